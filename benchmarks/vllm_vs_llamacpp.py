"""vLLM against llama.cpp on this machine: the same model, workload and concurrency levels.

Starts one llama-server (the embedded Gemma 3 270M Q4_K_M GGUF) and then one vLLM (the same
GGUF converted to bf16 by `make vllm`), each alone on all cores with 4 sequences and a 2,048-token
context, and measures each with `llmhost bench`'s runner at the same fixed concurrency levels
(no early stop, so both get every level). Engines are measured directly, without the gateway,
one after the other (two engines at once would share the 2 cores). Prints a Markdown table
(with --out, also written there); last line: JSON with each engine's output tokens/s per level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.bench.client import Endpoint  # noqa: E402
from llmhost.bench.load import Load, run_load  # noqa: E402
from llmhost.bench.metrics import Slo, summarize  # noqa: E402
from llmhost.bench.workload import Workload  # noqa: E402
from llmhost.engines import LaunchSpec  # noqa: E402
from llmhost.engines.build import build_llama_server  # noqa: E402
from llmhost.engines.llamacpp import LlamaCppAdapter  # noqa: E402
from llmhost.engines.supervisor import free_port  # noqa: E402
from llmhost.engines.vllm import VllmAdapter  # noqa: E402
from llmhost.engines.vllm_install import install_vllm, vllm_launcher  # noqa: E402
from llmhost.engines.vllm_pins import pins  # noqa: E402
from llmhost.engines.vllm_weights import prepare_embedded  # noqa: E402
from llmhost.engines.weights import embedded_gguf  # noqa: E402
from tests.support.processes import stop, wait_http  # noqa: E402

MODEL = "gemma-3-270m"


def spec(weights: Path, threads: int) -> LaunchSpec:
    return LaunchSpec(
        weights=str(weights),
        served_name=MODEL,
        context=2048,
        parallel=4,
        port=free_port(),
        threads=threads,
        chat_template="gemma",
        cpu_kv_cache_gib=1.0,
    )


async def measure(
    url: str, shape: Workload, levels: list[int], requests: int
) -> list[dict[str, Any]]:
    out = []
    async with Endpoint(url + "/v1", MODEL) as endpoint:
        for i, c in enumerate(levels):
            load = Load(concurrency=c, requests=requests)
            drawn = replace(shape, seed=shape.seed + i).requests(requests)
            run = await run_load(endpoint, drawn, load, lambda r: None)
            summary = summarize(run.records, run.wall_s, Slo())
            # the machine's 1-minute load average after the level: other work skews the figures
            out.append({"concurrency": c, "load_average": os.getloadavg()[0], **summary})
    return out


def serve(
    cmd: list[str], env: dict[str, str], log: Path, url: str, timeout_s: float
) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        proc = subprocess.Popen(
            cmd,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    wait_http(url + "/health", proc, timeout_s=timeout_s)
    return proc


def row(engine: str, s: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        return f"{s[key]['median'] * 1000:,.0f}" if s[key] else "-"

    return (
        f"| {engine} | {s['concurrency']} | {s['succeeded']} | "
        f"{s['output_token_throughput']:.1f} | {ms('ttft_s')} | {ms('tpot_s')} | "
        f"{ms('latency_s')} | {s['load_average']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    shape = Workload("fixed", args.prompt_tokens, args.output_tokens)
    work = Path(tempfile.mkdtemp(prefix="llmhost-vllm-vs-llamacpp-"))
    results: dict[str, list[dict[str, Any]]] = {}

    llama = spec(embedded_gguf(), args.threads)
    url = f"http://127.0.0.1:{llama.port}"
    cmd = [str(build_llama_server()), *LlamaCppAdapter().launch_args(llama)]
    proc = serve(cmd, {}, work / "llama-server.log", url, 300)
    try:
        results["llama.cpp"] = asyncio.run(measure(url, shape, levels, args.requests))
    finally:
        stop(proc)
    print(json.dumps({"llama.cpp": results["llama.cpp"]}), file=sys.stderr, flush=True)

    folder = prepare_embedded()
    vllm = spec(folder, args.threads)
    url = f"http://127.0.0.1:{vllm.port}"
    adapter = VllmAdapter()
    cmd = [str(vllm_launcher(install_vllm())), *adapter.launch_args(vllm)]
    proc = serve(cmd, adapter.launch_env(vllm), work / "vllm.log", url, 900)
    try:
        results["vLLM"] = asyncio.run(measure(url, shape, levels, args.requests))
    finally:
        stop(proc)

    lines = [
        f"Gemma 3 270M, {args.prompt_tokens}-token prompts, {args.output_tokens} output tokens "
        f"(forced), {args.requests} requests per level, each engine alone on {args.threads} "
        f"threads with 4 sequences; llama.cpp on the Q4_K_M GGUF, vLLM {pins().cpu.version} "
        "(CPU build, compiled) on the same GGUF converted to bf16.",
        "",
        "| engine | concurrency | ok | out tok/s | TTFT p50 ms | TPOT p50 ms | E2E p50 ms "
        "| load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for engine, rows in results.items():
        lines += [row(engine, s) for s in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    print(
        json.dumps(
            {
                e: {str(s["concurrency"]): round(s["output_token_throughput"], 1) for s in rows}
                for e, rows in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
