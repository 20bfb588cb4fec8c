"""Reading llama-server's load log."""

import pytest

from llmhost.engines.llamacpp import parse_memory_report


def test_parser_reads_every_buffer() -> None:
    log = (
        "load_tensors:   CPU_Mapped model buffer size =   235.16 MiB\n"
        "load_tensors:   CPU_REPACK model buffer size =    12.66 MiB\n"
        "llama_context:        CPU  output buffer size =     2.00 MiB\n"
        "llama_kv_cache:        CPU KV buffer size =    12.00 MiB\n"
        "llama_kv_cache:        CPU KV buffer size =    30.00 MiB\n"
        "sched_reserve:        CPU compute buffer size =    20.77 MiB\n"
    )
    mem = parse_memory_report(log)
    mib = 1024 * 1024
    assert mem.model == int(235.16 * mib) and mem.kv == 42 * mib
    assert mem.output == 2 * mib and mem.compute == int(20.77 * mib)
    with pytest.raises(ValueError, match="-lv 4"):
        parse_memory_report("nothing here")
