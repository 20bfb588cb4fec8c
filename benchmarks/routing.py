"""Routing strategies side by side: round-robin, least-load and prefix affinity on 4 real
llama-server replicas of the embedded model, with many users sharing a few long system prompts.

For each strategy it starts `llmhost up` fresh (cold engine caches), warms it up the same way
(each system prompt once, one at a time), then sends the same seeded workload at the same
concurrency (every request streamed, so TTFT is real) and reads the audit log for how requests
spread over replicas. Prefix affinity should keep each system prompt on one replica, where
llama-server's prompt cache already holds its KV, and so cut TTFT.

Last line: JSON with `ttft_mean_ms`, `ttft_p95_ms` and `output_tokens_per_s` of the measured
workload, each keyed by strategy, plus `requests_per_replica` (the spread) and
`warmup_ttft_mean_ms` (the cold warm-up requests, for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import openai
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.engines.build import build_llama_server  # noqa: E402
from llmhost.engines.supervisor import free_port  # noqa: E402
from llmhost.engines.weights import embedded_gguf  # noqa: E402
from llmhost.gateway.store import open_store  # noqa: E402
from tests.support.processes import stop, wait_http  # noqa: E402

WORDS = (
    "policy", "support", "customer", "order", "refund", "shipping", "account", "warranty",
    "product", "service", "billing", "invoice", "delivery", "return", "exchange", "contact",
    "hours", "manager", "escalation", "note",
)  # fmt: skip
STRATEGIES = ("round-robin", "least-load", "prefix")


def system_prompts(count: int, words: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"You are support agent #{i}. Rules: " + " ".join(rng.choice(WORDS) for _ in range(words))
        for i in range(count)
    ]


def workload(prompts: list[str], requests: int, seed: int) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    return [[{"role": "system", "content": rng.choice(prompts)},
             {"role": "user", "content": f"Customer {i} asks about order {rng.randint(1, 9999)}."}]
            for i in range(requests)]  # fmt: skip


async def drive(url: str, conversations: list[list[dict[str, str]]], concurrency: int,
                max_tokens: int) -> tuple[list[float], int, float]:  # fmt: skip
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0,
                                timeout=600)  # fmt: skip
    queue: asyncio.Queue[list[dict[str, str]]] = asyncio.Queue()
    for conversation in conversations:
        queue.put_nowait(conversation)
    ttfts: list[float] = []
    tokens = 0

    async def worker() -> None:
        nonlocal tokens
        while not queue.empty():
            messages = queue.get_nowait()
            started = time.perf_counter()
            stream = await client.chat.completions.create(
                model="gemma-3-270m", messages=messages, max_tokens=max_tokens, stream=True,
                stream_options={"include_usage": True}, temperature=0,
            )  # type: ignore[call-overload]  # fmt: skip
            first = None
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                if chunk.usage is not None:
                    tokens += chunk.usage.completion_tokens
            ttfts.append((first or time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    await client.close()
    return ttfts, tokens, wall


def run_strategy(name: str, warmup: list[list[dict[str, str]]],
                 conversations: list[list[dict[str, str]]], args: argparse.Namespace,
                 work: Path) -> dict[str, object]:  # fmt: skip
    port = free_port()
    store = work / f"{name}.db"
    config = {
        "server": {"port": port, "auth": "open", "store_url": f"sqlite:///{store}"},
        "models": [{"name": "gemma-3-270m", "weights": "embedded", "chat_template": "gemma",
                    "replicas": args.replicas, "parallel": args.parallel,
                    "context": args.context, "routing": name,
                    # The same engine for every strategy: prefix routing turns on full-size
                    # sliding-window KV (so llama-server's prompt cache restores whole
                    # prefixes); the others get it too, so only the routing differs. The host
                    # prompt cache is held to a few prompts, as a GPU's KV cache would be.
                    "args": ["--swa-full", "--cache-ram", str(args.cache_ram_mib)]}],
    }  # fmt: skip
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    with (work / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "llmhost", "up", "--config", str(path)],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_http(url + "/ready", proc, timeout_s=600)
        # Warm-up, the same for every strategy: each system prompt once, one at a time. What
        # follows is the steady state a service with these users lives in.
        cold, _, _ = asyncio.run(drive(url, warmup, 1, args.max_tokens))
        ttfts, tokens, wall = asyncio.run(drive(url, conversations, args.concurrency,
                                                args.max_tokens))  # fmt: skip
        time.sleep(0.3)
    finally:
        stop(proc, 60)
    measured = open_store(f"sqlite:///{store}").audit()[len(warmup) :]
    spread = Counter(r.replica for r in measured)
    ordered = sorted(ttfts)
    result = {
        "ttft_mean_ms": round(statistics.mean(ttfts), 1),
        "ttft_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "output_tokens_per_s": round(tokens / wall, 2),
        "requests_per_replica": sorted(spread.values(), reverse=True),
        "warmup_ttft_mean_ms": round(statistics.mean(cold), 1),
    }
    print(f"{name:12} TTFT mean {result['ttft_mean_ms']:8.1f} ms  p95 {result['ttft_p95_ms']:8.1f}"
          f" ms  output {result['output_tokens_per_s']:6.2f} tok/s  spread "
          f"{result['requests_per_replica']}  (warm-up TTFT mean "
          f"{result['warmup_ttft_mean_ms']:.1f} ms)", file=sys.stderr, flush=True)  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--context", type=int, default=2048)
    # More distinct prompts than one replica's slots can cache, as many as all replicas' slots:
    # the case prefix affinity exists for.
    parser.add_argument("--prompts", type=int, default=8, help="distinct system prompts")
    parser.add_argument("--prompt-words", type=int, default=700)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    # llama-server keeps evicted prompts in host memory (8 GiB by default), which would let every
    # replica cache every prompt of this small workload: the case where routing cannot matter.
    # 40 MiB holds about two of these prompts' KV (Gemma 3 270M: 18 KiB per token).
    parser.add_argument("--cache-ram-mib", type=int, default=40)
    args = parser.parse_args()
    build_llama_server()
    embedded_gguf()
    work = Path(tempfile.mkdtemp(prefix="llmhost-routing-"))
    prompts = system_prompts(args.prompts, args.prompt_words, args.seed)
    conversations = workload(prompts, args.requests, args.seed)
    warmup = [[{"role": "system", "content": prompt},
               {"role": "user", "content": "Hello."}] for prompt in prompts]  # fmt: skip
    results = {name: run_strategy(name, warmup, conversations, args, work)
               for name in STRATEGIES}  # fmt: skip
    summary = {
        key: {name: results[name][key] for name in STRATEGIES}
        for key in (
            "ttft_mean_ms",
            "ttft_p95_ms",
            "output_tokens_per_s",
            "requests_per_replica",
            "warmup_ttft_mean_ms",
        )
    }
    rr, px = results["round-robin"]["ttft_mean_ms"], results["prefix"]["ttft_mean_ms"]
    print(f"prefix cuts mean TTFT {rr / px:.1f}x against round-robin", file=sys.stderr)  # type: ignore[operator]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
