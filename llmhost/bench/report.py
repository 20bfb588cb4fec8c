"""How a benchmark is shown and kept: a live progress line while it runs, a summary table, and
with --out a directory of JSON (every request and the summaries), Markdown and PNG charts."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llmhost.bench.client import Record
from llmhost.bench.runner import Level, Progress


async def live_progress(console: Console, start: Callable[[Progress], Awaitable[list[Level]]]
                        ) -> list[Level]:  # fmt: skip
    """Run `start` with a live line per load level: requests done, errors, output tokens/s."""
    from rich.live import Live

    @dataclasses.dataclass
    class State:
        label: str = ""
        done: int = 0
        errors: int = 0
        tokens: int = 0
        since: float = dataclasses.field(default_factory=time.perf_counter)

    state = State()

    def line() -> str:
        rate = state.tokens / max(1e-9, time.perf_counter() - state.since)
        return (f"{state.label}: {state.done} done, {state.errors} errors, "
                f"{rate:.1f} output tokens/s")  # fmt: skip

    with Live(line(), console=console, refresh_per_second=4, transient=True) as live:

        def progress(label: str, record: Record) -> None:
            nonlocal state
            if label != state.label:
                if state.label and not console.is_terminal:
                    console.print(line())
                state = State(label)
            state.done += 1
            state.errors += 0 if record.ok else 1
            state.tokens += record.output_tokens
            live.update(line())

        result = await start(progress)
    if not console.is_terminal:
        console.print(line())
    return result


def _ms(stats: dict[str, float] | None, key: str) -> str:
    return f"{stats[key] * 1000:.1f}" if stats else "-"


COLUMNS = ("load", "ok", "errors", "req/s", "out tok/s", "total tok/s", "goodput",
           "TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms", "ITL p50 ms",
           "E2E p50 ms", "E2E p99 ms")  # fmt: skip


def rows(levels: list[Level]) -> list[list[str]]:
    """One table row per load level."""
    out = []
    for level in levels:
        s = level.summary
        errors = ", ".join(f"{k} {v}" for k, v in s["errors"].items()) or "0"
        out.append([level.run.load.label, str(s["succeeded"]), errors,
                    f"{s['request_throughput']:.2f}", f"{s['output_token_throughput']:.1f}",
                    f"{s['total_token_throughput']:.1f}", f"{s['goodput']:.2f}",
                    _ms(s["ttft_s"], "median"), _ms(s["ttft_s"], "p99"),
                    _ms(s["tpot_s"], "median"), _ms(s["tpot_s"], "p99"),
                    _ms(s["itl_s"], "median"), _ms(s["latency_s"], "median"),
                    _ms(s["latency_s"], "p99")])  # fmt: skip
    return out


def print_summary(levels: list[Level], cost: dict[str, Any] | None, console: Console) -> None:
    """The summary table, and the cost lines when hardware was given."""
    table = Table(*COLUMNS, title="llmhost bench")
    for row in rows(levels):
        table.add_row(*row)
    console.print(table)
    for line in cost_lines(cost):
        console.print(line)


def cost_lines(cost: dict[str, Any] | None) -> list[str]:
    """The cost figures in words."""
    if not cost:
        return []
    lines = [f"{cost['hardware']}: ${cost['hourly_usd']:.2f}/hour ({cost['price_source']})",
             f"at saturation ({cost['saturation_output_tokens_per_s']:.1f} output tokens/s): "
             f"${cost['usd_per_million_output_tokens_saturated']:.2f} per 1M output tokens; "
             f"at {cost['utilization']:.0%} utilisation: "
             f"${cost['usd_per_million_output_tokens']:.2f}"]  # fmt: skip
    for row in cost["hosted"]:
        lines.append(f"  break-even vs {row['provider']} {row['api_model']}: "
                     f"{row['break_even_tokens_per_day'] / 1e6:.1f}M tokens/day")  # fmt: skip
    return lines


def markdown(levels: list[Level], meta: dict[str, Any], cost: dict[str, Any] | None) -> str:
    """The report as Markdown: what was measured, the table, the cost."""
    lines = [f"# llmhost bench: {meta['model']} at {meta['url']}", "",
             f"Workload: {meta['workload']}. Output length forced: {meta['force_length']}. "
             f"Date: {meta['date']}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in rows(levels)]
    if cost:
        lines += ["", *[f"- {line.strip()}" for line in cost_lines(cost)]]
    return "\n".join(lines) + "\n"


def write(out: Path, levels: list[Level], meta: dict[str, Any], cost: dict[str, Any] | None
          ) -> list[Path]:  # fmt: skip
    """results.json (every request and every summary), report.md and the charts."""
    from llmhost.bench.charts import ChartContext, draw

    out.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "cost": cost,
        "levels": [{"load": lv.run.load.label, "concurrency": lv.run.load.concurrency,
                    "rate": lv.run.load.rate, "stopped_by": lv.run.stopped_by,
                    "summary": lv.summary,
                    "requests": [r.to_dict() for r in lv.run.records]} for lv in levels],
    }  # fmt: skip
    results = out / "results.json"
    results.write_text(json.dumps(data, indent=1))
    report = out / "report.md"
    report.write_text(markdown(levels, meta, cost))
    return [results, report, *draw(levels, out, ChartContext.from_meta(meta))]
