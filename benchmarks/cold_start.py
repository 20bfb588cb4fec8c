"""Cold start: time from a request at zero replicas to its first token, and no failures while
the model scales from zero (the activator holds requests until a replica is ready).

Runs `llmhost up` with the embedded model at zero replicas (min 0, idle to zero after 3 s), then
for each round: waits until the model is at zero, sends a burst of concurrent streamed requests,
and measures each one's time to first token. Last line: JSON with `first_token_s` (median over
rounds of the first request's time to first token) and `failed_requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.engines.build import build_llama_server  # noqa: E402
from llmhost.engines.supervisor import free_port  # noqa: E402
from llmhost.engines.weights import embedded_gguf  # noqa: E402
from tests.support.processes import engine_pids, stop, wait_http  # noqa: E402


async def burst(url: str, count: int) -> tuple[list[float], int]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0,
                                timeout=120)  # fmt: skip

    async def one() -> float | None:
        started = time.perf_counter()
        try:
            stream = await client.chat.completions.create(
                model="gemma-3-270m", stream=True, max_tokens=8,
                messages=[{"role": "user", "content": "Say hello"}],
            )  # fmt: skip
            first = None
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
            return first
        except openai.APIError:
            return None

    results = await asyncio.gather(*(one() for _ in range(count)))
    return [r for r in results if r is not None], sum(r is None for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    build_llama_server()
    embedded_gguf()
    work = Path(tempfile.mkdtemp(prefix="llmhost-cold-"))
    port = free_port()
    config = {
        "server": {"port": port, "auth": "open", "store_url": f"sqlite:///{work / 'db'}"},
        "models": [{"name": "gemma-3-270m", "weights": "embedded", "chat_template": "gemma",
                    "replicas": 0, "min_replicas": 0, "max_replicas": 1, "idle_to_zero_s": 3,
                    "parallel": 4, "context": 1024}],
    }  # fmt: skip
    (work / "llmhost.yaml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    with (work / "gateway.log").open("wb") as log:
        command = [sys.executable, "-m", "llmhost", "up", "--config", str(work / "llmhost.yaml")]
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    firsts: list[float] = []
    failed = 0
    try:
        wait_http(url + "/ready", proc)
        for round_ in range(args.rounds):
            while engine_pids(proc.pid):  # wait for the idle scale-down to zero
                time.sleep(0.2)
            times, errors = asyncio.run(burst(url, args.concurrency))
            failed += errors
            if times:
                firsts.append(min(times))
            first, last = min(times, default=float("nan")), max(times, default=float("nan"))
            print(f"round {round_ + 1}: first token after {first:.2f} s from zero; slowest of "
                  f"{args.concurrency} {last:.2f} s; failed {errors}", file=sys.stderr)  # fmt: skip
    finally:
        stop(proc, 30)
    print(json.dumps({"first_token_s": round(statistics.median(firsts), 3) if firsts else None,
                      "failed_requests": failed}))  # fmt: skip


if __name__ == "__main__":
    main()
