"""`llmhost bench` against the real embedded engine, directly and through the gateway: a small
concurrency sweep whose numbers must agree with each other and with the engine's usage, and the
files it writes. Also an endpoint that fails some requests: counted, reported, no crash."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmhost.engines.base import LaunchSpec
from llmhost.engines.build import build_llama_server
from llmhost.engines.llamacpp import LlamaCppAdapter
from llmhost.engines.supervisor import free_port
from llmhost.engines.weights import embedded_gguf
from tests.integration.conftest import Served, start_gateway, stop_gateway
from tests.support.harness import served_in_thread
from tests.support.processes import stop, wait_http
from tests.support.standin import StandIn

pytestmark = pytest.mark.integration
OUTPUT = 12


@pytest.fixture(scope="module")
def engine() -> Iterator[str]:
    """One llama-server of the embedded model with 2 slots; its base URL."""
    spec = LaunchSpec(
        weights=str(embedded_gguf()),
        served_name="gemma-3-270m",
        context=1024,
        parallel=2,
        port=free_port(),
        threads=2,
        chat_template="gemma",
    )
    proc = subprocess.Popen(
        [str(build_llama_server()), *LlamaCppAdapter().launch_args(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{spec.port}"
    try:
        wait_http(url + "/health", proc, timeout_s=120)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def gateway(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = {"models": [{"name": "gemma-3-270m", "engine": "llamacpp", "urls": [engine]}]}
    served = start_gateway(config, tmp_path_factory.mktemp("bench-gateway"))
    yield served
    assert stop_gateway(served) == []


def bench(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "llmhost",
            "bench",
            url,
            "--model",
            "gemma-3-270m",
            "--prompt-tokens",
            "48",
            "--output-tokens",
            str(OUTPUT),
            "--requests",
            "4",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def check_consistent(results: dict[str, Any]) -> None:
    for level in results["levels"]:
        summary, requests = level["summary"], level["requests"]
        assert summary["succeeded"] == len(requests) == 4
        for r in requests:
            assert r["error"] is None
            assert r["output_tokens"] == OUTPUT  # forced with ignore_eos; the engine's usage
            assert len(r["chunks"]) == OUTPUT  # one streamed chunk per token
            assert 0 < r["ttft"] < r["latency"]
            assert r["tpot"] == pytest.approx((r["latency"] - r["ttft"]) / (OUTPUT - 1))
        output = sum(r["output_tokens"] for r in requests)
        assert summary["output_token_throughput"] == pytest.approx(output / summary["wall_s"])
        span = max(r["end"] for r in requests) - min(r["start"] for r in requests)
        assert span <= summary["wall_s"] + 1e-6  # the wall covers every request


def test_sweep_against_the_engine_directly(engine: str, tmp_path: Path) -> None:
    done = bench(
        engine,
        tmp_path,
        "--sweep",
        "concurrency",
        "--max-concurrency",
        "2",
        "--gpu",
        "cpu",
        "--price",
        "0.10",
        "--catalog-model",
        "gemma-3-270m",
        "--engine",
        "llamacpp",
        "--quant",
        "q4_k_m",
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert [lv["concurrency"] for lv in results["levels"]] == [1, 2]
    check_consistent(results)
    for name in ("report.md", "throughput.png", "latency_percentiles.png", "latency_cdf.png"):
        assert (tmp_path / name).stat().st_size > 0
    cost = results["cost"]
    best = max(lv["summary"]["output_token_throughput"] for lv in results["levels"])
    assert cost["usd_per_million_output_tokens_saturated"] == pytest.approx(
        0.10 / (best * 3600) * 1e6
    )
    assert "$0.10/hour" in done.stdout and "per 1M output tokens" in done.stdout
    assert "gpt-4o-mini" in {r["api_model"] for r in cost["hosted"]}  # the reference APIs
    assert all(r["break_even_tokens_per_day"] > 0 for r in cost["hosted"])


def test_a_poisson_rate_sweep_through_the_gateway(gateway: Served, tmp_path: Path) -> None:
    done = bench(
        gateway.url, tmp_path, "--sweep", "rate", "--rate-steps", "2", "--max-concurrency", "2"
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    levels = results["levels"]
    # The synchronous rate (one at a time), the saturated one (concurrency 2), and Poisson
    # arrival rates between them (just one when saturation brings no more requests/s).
    assert levels[0]["concurrency"] == 1 and levels[-1]["concurrency"] == 2
    sync, peak = (levels[i]["summary"]["request_throughput"] for i in (0, -1))
    rates = [lv["rate"] for lv in levels[1:-1]]
    expected = [sync, peak] if peak > sync else [peak]
    assert rates == pytest.approx(expected)
    check_consistent(results)


@pytest.fixture
def flaky() -> Iterator[str]:
    """The stand-in, which fails the requests that ask it to (what is under test is the bench)."""
    with served_in_thread(StandIn().app()) as url:
        yield url


def _bench_file(url: str, model: str, prompts: Path, *extra: str) -> list[str]:
    """`llmhost bench` of `url` with the prompts in `prompts` as they are (no forced length)."""
    return [
        *(sys.executable, "-m", "llmhost", "bench", url, "--model", model),
        *("--workload", "file", "--prompts-file", str(prompts), "--no-force-length", *extra),
    ]


def test_failed_requests_are_counted_not_fatal(flaky: str, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": "ok"},
        {"prompt": "no", "x_standin": {"status": 500}},
        {"prompt": "cut", "x_standin": {"break_after": 1}},
    ]
    prompts.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = subprocess.run(
        _bench_file(
            flaky, "m", prompts, "--requests", "6", "--concurrency", "2", "--out", str(tmp_path)
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "results.json").read_text())["levels"][0]["summary"]
    assert summary["succeeded"] == 2
    assert summary["errors"] == {"http_5xx": 2, "stream": 2}
    assert "http_5xx 2" in done.stdout


def test_ctrl_c_after_a_level_writes_the_finished_levels(flaky: str, tmp_path: Path) -> None:
    # Each request streams for about 1.2 s: the first level (3 one at a time) takes 3.6 s, the
    # second (3 on 2 connections) 2.4 s, and the interrupt lands in the second.
    prompts = tmp_path / "prompts.jsonl"
    slow = {"prompt": "slow", "x_standin": {"chunks": 4, "chunk_delay_s": 0.3}}
    prompts.write_text(json.dumps(slow) + "\n")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _bench_file(
            flaky,
            "standin",
            prompts,
            *("--requests", "3", "--sweep", "concurrency", "--slo-ttft", "0.5"),
            *("--out", str(out)),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first level's final progress line
        assert first.startswith("concurrency 1: 3/3 done, 0 errors, "), first
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert stderr.strip().splitlines() == ["interrupted after 1 level"]
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["interrupted"] is True
    assert results["meta"]["slo"] == {"ttft_s": 0.5, "tpot_s": None, "latency_s": None}
    (level,) = results["levels"]  # the level in progress is not kept
    assert level["concurrency"] == 1 and level["summary"]["succeeded"] == 3
    assert len(level["requests"]) == 3
    assert "Interrupted after 1 level (Ctrl-C)" in (out / "report.md").read_text()
    for name in ("throughput.png", "latency_percentiles.png", "latency_cdf.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "concurrency 1" in stdout and "concurrency 2" not in stdout  # the summary table
