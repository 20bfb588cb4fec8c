"""Gateway overhead: the same stand-in backend reached directly, through llmhost, and through
the LiteLLM proxy, side by side in one run.

The backend is a stand-in (tests/support/standin.py) that answers instantly, so every extra
millisecond is the gateway's. For each offered rate (open loop: requests are sent on schedule
whether or not earlier ones have finished) and each target, it measures latency percentiles and
errors; a rate is "sustained" when nothing fails, at least 95% of the offered rate completes and
p99 stays under 1 s. Streaming: time to first chunk at a low rate. A bare aiohttp pass-through
(benchmarks/passthrough_floor.py, "floor") runs beside them: what any gateway on this HTTP stack
costs before doing any work of its own. LiteLLM is installed by this
script into its own virtualenv under ~/.cache/llmhost/bench (pass --no-litellm to skip).

llmhost runs with API keys on (auth, rate and token limits and the audit log on every request).
llmhost runs with request validation on (every body checked against the OpenAI schema) and
the per-request access line off (`access_log: false`, as behind a load balancer that logs).
Last line: one JSON object with llmhost_added_p50_ms, llmhost_added_p99_ms, litellm_added_p50_ms,
litellm_added_p99_ms (all at 300 req/s), llmhost_added_ttft_ms, floor_added_ttft_ms (the same
streamed first chunk through the bare pass-through), llmhost_max_rps, litellm_max_rps, and the
target ratios llmhost_vs_floor_added_p50, llmhost_vs_floor_max_rps and
llmhost_vs_litellm_max_rps (with llmhost_vs_floor_added_ttft beside them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.engines.supervisor import free_port  # noqa: E402
from llmhost.gateway.keys import create_key  # noqa: E402
from llmhost.gateway.store import open_store  # noqa: E402
from llmhost.paths import cache_dir  # noqa: E402
from tests.support.processes import stop, wait_http  # noqa: E402

LITELLM_VERSION = "1.100.5"  # newer releases need a certifi release the registry lacks
BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 16}
).encode()
STREAM_BODY = json.dumps(
    {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Hello there"}]}
).encode()
HEADERS = {"Content-Type": "application/json"}  # main() adds llmhost's API key


@dataclass
class Run:
    """One target at one offered rate."""

    target: str
    rate: float
    latencies_ms: list[float]
    errors: int
    achieved: float

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def sustained(self) -> bool:
        return self.errors == 0 and self.achieved >= 0.95 * self.rate and self.pct(99) < 1000


@contextlib.contextmanager
def process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child for the duration of the block, then stop it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        yield proc
    finally:
        stop(proc)


def litellm_binary() -> Path:
    """The LiteLLM proxy in its own virtualenv, installed on first use."""
    venv = cache_dir() / "bench" / f"litellm-{LITELLM_VERSION}"
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
        )
    return binary


async def open_loop(url: str, body: bytes, rate: float, seconds: float, target: str) -> Run:
    """Send `rate` requests per second for `seconds`, on schedule; collect latencies."""
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=1024, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=HEADERS) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                errors += 1
                return
            latencies.append((time.perf_counter() - t0) * 1000)

        total = int(rate * seconds)
        tasks = []
        start = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                tasks.append(asyncio.create_task(one()))
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
        errors += len(pending)
        elapsed = time.perf_counter() - start
    return Run(target, rate, latencies, errors, len(latencies) / elapsed)


async def first_chunk_ms(url: str, count: int, rate: float) -> list[float]:
    """Time to the first body chunk of streamed requests, one every 1/rate s."""
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            t0 = time.perf_counter()
            async with session.post(url, data=STREAM_BODY, headers=HEADERS) as resp:
                await resp.content.readany()
                times.append((time.perf_counter() - t0) * 1000)
                await resp.read()
            await asyncio.sleep(1 / rate)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per rate and target")
    parser.add_argument("--rates", default="100,300,600,1000,1500,2000,2500,3000,4000")
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="llmhost-bench-"))
    backend_port, gateway_port, litellm_port = free_port(), free_port(), free_port()
    floor_port = free_port()
    backend = f"http://127.0.0.1:{backend_port}"
    # llmhost does its full per-request work: key auth, rate and token limits, audit records.
    store_url = f"sqlite:///{work / 'llmhost.db'}"
    store = open_store(store_url)
    key, _ = create_key(store, "bench", rpm=10**8, tpm=2 * 10**9, max_concurrent=10**6)
    store.close()
    HEADERS["Authorization"] = f"Bearer {key}"
    (work / "llmhost.yaml").write_text(
        yaml.safe_dump(
            {
                "server": {
                    "port": gateway_port,
                    "auth": "keys",
                    "store_url": store_url,
                    # The request path as a production gateway runs it: the per-request access
                    # line (a log write, about 10% of the gateway's CPU here) is off.
                    "access_log": False,
                },
                # The stand-in answers at once with no slots to fill, so lift the per-replica
                # in-flight cap that protects real engines (4 x parallel): this measures the
                # gateway, not its queue.
                "models": [
                    {
                        "name": "m",
                        "engine": "openai",
                        "urls": [backend],
                        "max_inflight_per_replica": 100000,
                    }
                ],
            }
        )
    )
    (work / "litellm.yaml").write_text(
        yaml.safe_dump(
            {
                "model_list": [
                    {
                        "model_name": "m",
                        "litellm_params": {
                            "model": "openai/m",
                            "api_base": backend + "/v1",
                            "api_key": "unused",
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False},
            }
        )
    )
    targets = {"direct": backend, "llmhost": f"http://127.0.0.1:{gateway_port}"}
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            process(
                [
                    sys.executable,
                    str(ROOT / "tests/support/standin.py"),
                    "--port",
                    str(backend_port),
                ],
                work / "standin.log",
            )
        )
        wait_http(backend + "/health")
        gw = stack.enter_context(
            process(
                [sys.executable, "-m", "llmhost", "up", "--config", str(work / "llmhost.yaml")],
                work / "llmhost.log",
            )
        )
        wait_http(targets["llmhost"] + "/ready", proc=gw)
        floor = stack.enter_context(
            process(
                [
                    sys.executable,
                    str(ROOT / "benchmarks/passthrough_floor.py"),
                    str(floor_port),
                    backend,
                ],
                work / "floor.log",
            )
        )
        targets["floor"] = f"http://127.0.0.1:{floor_port}"
        wait_http(targets["floor"] + "/health", proc=floor)
        if not args.no_litellm:
            lite = stack.enter_context(
                process(
                    [
                        str(litellm_binary()),
                        "--config",
                        str(work / "litellm.yaml"),
                        "--port",
                        str(litellm_port),
                        "--num_workers",
                        "1",
                    ],
                    work / "litellm.log",
                    env={"LITELLM_LOG": "ERROR"},
                )
            )
            targets["litellm"] = f"http://127.0.0.1:{litellm_port}"
            wait_http(targets["litellm"] + "/health/liveliness", timeout_s=180, proc=lite)
        runs = asyncio.run(measure(targets, rates, args.seconds))
    report(runs, targets)


async def measure(targets: dict[str, str], rates: list[float], seconds: float) -> dict[str, object]:
    results: dict[str, list[Run]] = {t: [] for t in targets}
    for name, base in targets.items():  # warm up connections, caches and lazy start-up work
        await open_loop(base + "/v1/chat/completions", BODY, 50, 4, name)
    live = set(targets)
    for rate in rates:  # targets interleaved at each rate, so drift hits all alike
        for name in [t for t in targets if t in live]:
            run = await open_loop(targets[name] + "/v1/chat/completions", BODY, rate, seconds, name)
            results[name].append(run)
            print(
                f"{name:8} {rate:6.0f} req/s: achieved {run.achieved:7.1f}"
                f"  p50 {run.pct(50):7.2f} ms  p99 {run.pct(99):8.2f} ms  errors {run.errors}"
                f"{'' if run.sustained else '  (not sustained)'}",
                file=sys.stderr,
                flush=True,
            )
            if not run.sustained and name != "direct" and rate >= 300:
                live.discard(name)  # every target is measured at 300 req/s, the reference rate
    ttfc: dict[str, list[float]] = {}
    for _ in range(4):  # interleaved rounds
        for name, base in targets.items():
            ttfc.setdefault(name, []).extend(
                await first_chunk_ms(base + "/v1/chat/completions", 50, 50)
            )
    return {"runs": results, "ttfc": ttfc}


def report(measured: dict[str, object], targets: dict[str, str]) -> None:
    runs: dict[str, list[Run]] = measured["runs"]  # type: ignore[assignment]
    ttfc: dict[str, list[float]] = measured["ttfc"]  # type: ignore[assignment]

    def at(name: str, rate: float) -> Run | None:
        return next((r for r in runs.get(name, []) if r.rate == rate), None)

    def added(name: str, q: float) -> float | None:
        mine, base = at(name, 300), at("direct", 300)
        if mine is None or base is None or not mine.latencies_ms:
            return None
        return round(mine.pct(q) - base.pct(q), 3)

    def added_ttfc(name: str) -> float:
        return round(statistics.median(ttfc[name]) - statistics.median(ttfc["direct"]), 3)

    def max_rps(name: str) -> float:
        return max((r.rate for r in runs.get(name, []) if r.sustained), default=0.0)

    print("\ntarget    rate   achieved   p50 ms   p99 ms  errors", file=sys.stderr)
    for name in targets:
        for r in runs[name]:
            print(
                f"{name:8} {r.rate:6.0f} {r.achieved:9.1f} {r.pct(50):8.2f} {r.pct(99):8.2f}"
                f" {r.errors:7d}",
                file=sys.stderr,
            )
    for name, values in ttfc.items():
        print(
            f"time to first chunk {name:8}: p50 {statistics.median(values):.2f} ms", file=sys.stderr
        )
    summary = {
        "llmhost_added_p50_ms": added("llmhost", 50),
        "llmhost_added_p99_ms": added("llmhost", 99),
        "litellm_added_p50_ms": added("litellm", 50),
        "litellm_added_p99_ms": added("litellm", 99),
        "llmhost_added_ttft_ms": added_ttfc("llmhost"),
        "floor_added_ttft_ms": added_ttfc("floor"),
        "llmhost_max_rps": max_rps("llmhost"),
        "litellm_max_rps": max_rps("litellm") if "litellm" in targets else None,
        "direct_max_rps": max_rps("direct"),
        "floor_added_p50_ms": added("floor", 50),
        "floor_max_rps": max_rps("floor"),
    }
    # The targets, as ratios within this run: added p50 within 1.1x of the bare pass-through's,
    # sustained rate at least 0.9x the pass-through's and 10x LiteLLM's.
    summary["llmhost_vs_floor_added_p50"] = _ratio(
        summary["llmhost_added_p50_ms"], summary["floor_added_p50_ms"]
    )
    summary["llmhost_vs_floor_max_rps"] = _ratio(
        summary["llmhost_max_rps"], summary["floor_max_rps"]
    )
    summary["llmhost_vs_floor_added_ttft"] = _ratio(
        summary["llmhost_added_ttft_ms"], summary["floor_added_ttft_ms"]
    )
    summary["llmhost_vs_litellm_max_rps"] = _ratio(
        summary["llmhost_max_rps"], summary["litellm_max_rps"]
    )
    print(json.dumps(summary))


def _ratio(mine: object, base: object) -> float | None:
    """mine / base, or None when either is missing (a base of 0 sustained: infinite)."""
    if not isinstance(mine, int | float) or not isinstance(base, int | float):
        return None
    return round(mine / base, 3) if base else float("inf") if mine else None


if __name__ == "__main__":
    main()
