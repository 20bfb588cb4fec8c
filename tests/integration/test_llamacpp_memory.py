"""The planner's llama.cpp memory against what the real llama-server reports when it loads.

Builds llama-server on first use (about 5 minutes, cached in ~/.cache/llmhost), starts it on the
embedded Gemma 3 270M GGUF with 2 slots of 2,048 tokens, reads the buffer sizes from its load log
and compares them with `llamacpp_memory`. Tolerance: KV cache and output buffer exact to 1%,
compute buffer 10%, total 3%.
"""

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmhost.engines.base import LaunchSpec
from llmhost.engines.build import build_llama_server
from llmhost.engines.llamacpp import EngineMemory, LlamaCppAdapter, parse_memory_report
from llmhost.engines.supervisor import free_port
from llmhost.engines.weights import embedded_gguf
from llmhost.plan import memory
from llmhost.plan.catalog import load_catalog
from llmhost.plan.sources import read_gguf

pytestmark = pytest.mark.integration
CONTEXT, PARALLEL = 2048, 2


@pytest.fixture(scope="module")
def engine_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = build_llama_server()
    log_path: Path = tmp_path_factory.mktemp("engine") / "llama-server.log"
    spec = LaunchSpec(
        weights=str(embedded_gguf()),
        served_name="gemma",
        context=CONTEXT,
        parallel=PARALLEL,
        port=free_port(),
        threads=2,
    )
    args = [str(binary), *LlamaCppAdapter().launch_args(spec), "-lv", "4"]  # as the supervisor
    with log_path.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "listening on" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama-server did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_memory_matches_engine(engine_log: str) -> None:
    catalog = load_catalog()
    source = read_gguf(embedded_gguf())
    assert source.file_weights_bytes is not None
    predicted = memory.llamacpp_memory(
        source.spec, source.file_weights_bytes, catalog.engine("llamacpp"), CONTEXT, PARALLEL
    )
    measured: EngineMemory = parse_memory_report(engine_log)
    assert predicted.weights == pytest.approx(measured.model, rel=0.01)
    assert predicted.kv == pytest.approx(measured.kv, rel=0.01)
    assert predicted.output == pytest.approx(measured.output, rel=0.01)
    assert predicted.compute == pytest.approx(measured.compute, rel=0.10)
    assert predicted.total == pytest.approx(measured.total, rel=0.03)
