"""The summary tables stay readable on narrow terminals: at 80 and 120 columns no line is wider
than the terminal and every figure is printed whole, on one line."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from llmhost.bench.report import print_summary
from llmhost.bench.runner import Level
from tests.support.bench import failed, level, record, sweep


def render(levels: list[Level], width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    print_summary(levels, None, console)
    return console.export_text()


def heavy() -> list[Level]:
    """Wide figures: five-digit rates, latencies past 100 s, three error kinds, a long label."""
    slow = level(
        [record(0.0, 95.0, 123.4567, tokens=4000), failed(0.0), failed(0.0, "connection")]
        + [failed(0.0, "timeout")] * 12,
        concurrency=64,
        wall_s=0.3,
    )
    rate = level([record(0.0, 0.01, 0.2)], rate=12.3456, wall_s=0.08)
    return [*sweep([1, 2]), slow, rate]


def figures(levels: list[Level]) -> list[str]:
    out = []
    for lv in levels:
        s = lv.summary
        out += [
            f"{s['request_throughput']:.2f}",
            f"{s['output_token_throughput']:.1f}",
            f"{s['total_token_throughput']:.1f}",
        ]
        out += [f"{s[k]['median'] * 1000:.1f}" for k in ("ttft_s", "latency_s")]
        out += [f"{s[k]['p99'] * 1000:.1f}" for k in ("ttft_s", "tpot_s", "latency_s")]
        out += [f"{kind} {n}" for kind, n in s["errors"].items()]
    return out


@pytest.mark.parametrize("width", [80, 120])
def test_the_tables_fit_the_terminal_and_keep_every_figure_whole(width: int) -> None:
    levels = heavy()
    text = render(levels, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    cells = {cell.strip() for line in lines for cell in re.split(r"[│┃|]", line)}
    for figure in figures(levels):
        assert figure in cells, (figure, text)  # a cell of its own, not folded over two lines
    assert "123456.7" in cells  # E2E p50 of the slow level, in ms
    assert "rate 12.3456/s" in text and "concurrency 64" in text


def test_a_level_without_successes_shows_dashes_not_a_crash() -> None:
    text = render([level([failed(0.0)], concurrency=1)], 80)
    assert "http_5xx 1" in text and "-" in text
    assert max(len(line) for line in text.splitlines()) <= 80
