"""The benchmark's arithmetic and workloads on hand-made records: no endpoint needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmhost.bench.client import Record
from llmhost.bench.load import Load, concurrency_levels, rate_levels
from llmhost.bench.metrics import Slo, percentile, summarize
from llmhost.bench.workload import Workload
from llmhost.errors import UsageError


def record(start: float, chunks: list[float], end: float, out: int, prompt: int = 10,
           error: str | None = None) -> Record:  # fmt: skip
    return Record(start=start, end=end, chunks=chunks, prompt_tokens=prompt, output_tokens=out,
                  error=error, status=200 if error is None else 500)  # fmt: skip


def test_percentiles_interpolate_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(7.6)  # numpy.percentile(values, 90)
    assert percentile(values, 99) == pytest.approx(9.76)
    assert percentile([5.0], 99) == 5.0


def test_ttft_tpot_itl_and_throughput_follow_vllms_definitions() -> None:
    a = record(0.0, [0.5, 0.7, 1.0], 1.1, out=5)  # TTFT 0.5, TPOT (1.1-0.5)/4 = 0.15
    b = record(1.0, [1.2, 1.3], 1.5, out=3)  # TTFT 0.2, TPOT (0.5-0.2)/2 = 0.15
    failed = record(0.5, [], 0.6, out=0, error="http_5xx")
    s = summarize([a, b, failed], wall_s=2.0)
    assert a.ttft == 0.5 and a.tpot == pytest.approx(0.15) and b.tpot == pytest.approx(0.15)
    assert s["ttft_s"]["mean"] == pytest.approx(0.35)
    assert s["itl_s"]["median"] == pytest.approx(0.2)  # gaps 0.2, 0.3, 0.1
    assert s["latency_s"]["median"] == pytest.approx(0.8)  # 1.1 and 0.5
    assert s["request_throughput"] == 1.0  # 2 succeeded in 2 s
    assert s["output_token_throughput"] == 4.0  # (5 + 3) / 2
    assert s["total_token_throughput"] == 14.0  # (8 + 20) / 2
    assert s["errors"] == {"http_5xx": 1} and s["succeeded"] == 2


def test_goodput_counts_requests_within_every_slo() -> None:
    fast = record(0.0, [0.1, 0.2], 0.3, out=3)
    slow_first = record(0.0, [0.9, 1.0], 1.1, out=3)
    s = summarize([fast, slow_first], wall_s=1.0, slo=Slo(ttft_s=0.5))
    assert s["goodput"] == 1.0
    assert summarize([fast, slow_first], 1.0)["goodput"] == 2.0  # no SLO: every success


def test_workloads_are_seeded_and_shaped() -> None:
    fixed = Workload("fixed", prompt_tokens=20, output_tokens=7).requests(3)
    assert all(r.max_tokens == 7 and len(r.messages[0]["content"].split()) == 20 for r in fixed)
    spread = Workload("distribution", prompt_tokens=100, output_tokens=50, prompt_spread=0.5,
                      output_spread=0.5, seed=3)  # fmt: skip
    first, again = spread.requests(50), spread.requests(50)
    assert first == again  # same seed, same requests
    assert len({r.max_tokens for r in first}) > 10
    prefix = Workload("prefix", prompt_tokens=5, prefixes=3, prefix_tokens=40).requests(30)
    systems = {r.messages[0]["content"] for r in prefix}
    assert len(systems) == 3 and all(len(s.split()) == 40 for s in systems)


def test_file_workload_cycles_lines_and_passes_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    lines = [{"prompt": "hi", "max_tokens": 3, "top_k": 1}, {},
             {"messages": [{"role": "user", "content": "yo"}]}]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) if x else "" for x in lines) + "\n")
    requests = Workload("file", file=path, output_tokens=9).requests(3)
    assert [r.max_tokens for r in requests] == [3, 9, 3]
    assert requests[0].extra == {"top_k": 1} and requests[1].messages[0]["content"] == "yo"
    path.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(UsageError, match=r"prompts\.jsonl:2: not JSON"):
        Workload("file", file=path).requests(1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Workload("zipf"), "unknown workload 'zipf'"),
        (lambda: Workload("file"), "needs --prompts-file"),
        (lambda: Workload("fixed", prompt_tokens=0), "--prompt-tokens must be at least 1"),
        (lambda: Load(), "give one of --concurrency and --rate"),
        (lambda: Load(concurrency=2, rate=1.0), "give one of"),
        (lambda: Load(rate=-1.0), "--rate must be above 0"),
    ],
)
def test_bad_settings_are_clear_errors(make: object, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        make()  # type: ignore[operator]


def test_sweep_levels() -> None:
    assert concurrency_levels(10) == [1, 2, 4, 8, 10]
    assert concurrency_levels(1) == [1]
    assert rate_levels(1.0, 4.0, 4) == [1.0, 2.0, 3.0, 4.0]
