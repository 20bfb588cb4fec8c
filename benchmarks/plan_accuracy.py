"""The planner against this machine: predicted memory and decode speed of the embedded model
(Gemma 3 270M Q4_K_M on llama.cpp, on this CPU) next to what llama-server reports and does, before
and after calibration.

Memory: the planner's llama.cpp memory (weights, KV cache, compute and output buffers) against
the buffer sizes llama-server logs while loading. Decode: single-stream tokens/s measured with
`llmhost bench`'s client on two workloads: calibration is fitted on the first (128-token prompts,
64 output tokens) and judged on the second (512-token prompts, 128 output tokens), so the
calibrated figure is a prediction, not the fit read back.

Last line: JSON with the ratios predicted / measured: `memory_ratio`,
`decode_tps_ratio_uncalibrated`, `decode_tps_ratio_calibrated`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.bench.client import Endpoint  # noqa: E402
from llmhost.bench.load import Load  # noqa: E402
from llmhost.bench.metrics import Slo  # noqa: E402
from llmhost.bench.runner import bench  # noqa: E402
from llmhost.bench.workload import Workload  # noqa: E402
from llmhost.engines.base import LaunchSpec  # noqa: E402
from llmhost.engines.build import build_llama_server  # noqa: E402
from llmhost.engines.llamacpp import LlamaCppAdapter, parse_memory_report  # noqa: E402
from llmhost.engines.supervisor import free_port  # noqa: E402
from llmhost.engines.weights import embedded_gguf  # noqa: E402
from llmhost.plan import memory  # noqa: E402
from llmhost.plan.calibrate import fit, measurement_from, predict  # noqa: E402
from llmhost.plan.catalog import load_catalog  # noqa: E402
from llmhost.plan.host import cpu_gpu  # noqa: E402
from llmhost.plan.sources import read_gguf  # noqa: E402
from tests.support.processes import stop, wait_http  # noqa: E402

CONTEXT, PARALLEL, REQUESTS = 2048, 1, 6
CALIBRATE, JUDGE = (128, 64), (512, 128)  # (prompt tokens, output tokens)


async def measure(url: str, prompt: int, output: int) -> dict[str, object]:
    """One-at-a-time bench of the engine: a results document as `llmhost bench --out` writes."""
    shape = Workload("fixed", prompt_tokens=prompt, output_tokens=output, seed=1)
    async with Endpoint(url + "/v1", "gemma-3-270m") as endpoint:
        levels = await bench(endpoint, shape, Load(concurrency=1, requests=REQUESTS), Slo())
    level = levels[0]
    return {
        "meta": {"catalog_model": "gemma-3-270m", "gpu": "cpu", "engine": "llamacpp",
                 "quantization": "q4_k_m"},
        "levels": [{"concurrency": 1, "summary": level.summary,
                    "requests": [r.to_dict() for r in level.run.records]}],
    }  # fmt: skip


def main() -> None:
    binary, gguf = build_llama_server(), embedded_gguf()
    threads = os.cpu_count() or 1
    spec = LaunchSpec(weights=str(gguf), served_name="gemma-3-270m", context=CONTEXT,
                      parallel=PARALLEL, port=free_port(), threads=threads,
                      chat_template="gemma")  # fmt: skip
    log = Path(tempfile.mkdtemp(prefix="llmhost-accuracy-")) / "llama-server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(binary), *LlamaCppAdapter().launch_args(spec), "-lv", "4"],
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{spec.port}"
    try:
        wait_http(url + "/health", proc, timeout_s=120)
        calibration = asyncio.run(measure(url, *CALIBRATE))
        judged = asyncio.run(measure(url, *JUDGE))
    finally:
        stop(proc, 30)

    catalog = load_catalog()
    source = read_gguf(gguf)
    assert source.file_weights_bytes is not None
    profile = catalog.engine("llamacpp")
    predicted_memory = memory.llamacpp_memory(source.spec, source.file_weights_bytes, profile,
                                              CONTEXT, PARALLEL).total  # fmt: skip
    measured_memory = parse_memory_report(log.read_text()).total
    fmt, gpu = catalog.format("q4_k_m"), cpu_gpu(catalog.gpu("cpu"))
    basis = measurement_from(calibration, "calibration run")
    target = measurement_from(judged, "judged run")
    fitted = fit(source.spec, fmt, catalog, gpu, profile, basis)
    before = predict(source.spec, fmt, catalog, gpu, profile, target.prompt_tokens,
                     target.output_tokens).decode_tokens_per_s  # fmt: skip
    after = predict(source.spec, fmt, catalog, gpu, fitted, target.prompt_tokens,
                    target.output_tokens).decode_tokens_per_s  # fmt: skip
    measured = target.decode_tokens_per_s
    print(f"memory: predicted {predicted_memory / 2**20:.1f} MiB, llama-server reports "
          f"{measured_memory / 2**20:.1f} MiB", file=sys.stderr)  # fmt: skip
    print(f"decode, one stream ({target.prompt_tokens:.0f}-token prompts): measured "
          f"{measured:.1f} tokens/s; predicted {before:.1f} (catalog: {gpu.bandwidth_gbs} GB/s, "
          f"efficiency {profile.bandwidth_efficiency}), calibrated {after:.1f} (fitted on "
          f"{basis.prompt_tokens:.0f}-token prompts: bandwidth efficiency "
          f"{fitted.bandwidth_efficiency:.2f}, compute efficiency "
          f"{fitted.compute_efficiency:.2f})", file=sys.stderr)  # fmt: skip
    print(json.dumps({
        "memory_ratio": round(predicted_memory / measured_memory, 3),
        "decode_tps_ratio_uncalibrated": round(before / measured, 3),
        "decode_tps_ratio_calibrated": round(after / measured, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
