"""How a benchmark is shown and kept: a live progress line while it runs, a summary table, and
with --out a directory of JSON (every request and the summaries), Markdown and PNG charts."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llmhost.bench.progress import Tracker
from llmhost.bench.runner import Level, Watcher


async def live_progress(
    console: Console, tracker: Tracker, run: Callable[[Watcher], Awaitable[list[Level]]]
) -> list[Level]:
    """Run the benchmark with a live line (on a terminal) that `tracker` keeps current from the
    first second of every level; each level's final line is printed as it ends (on a terminal
    above the live line, elsewhere as the only output)."""
    from rich.live import Live
    from rich.text import Text

    with Live(
        get_renderable=lambda: Text(tracker.line()),
        console=console,
        refresh_per_second=4,
        transient=True,
    ):
        return await run(tracker)


def _ms(stats: dict[str, float] | None, key: str) -> str:
    return f"{stats[key] * 1000:.1f}" if stats else "-"


COLUMNS = (
    "load",
    "ok",
    "errors",
    "req/s",
    "out tok/s",
    "total tok/s",
    "goodput",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "TPOT p50 ms",
    "TPOT p99 ms",
    "ITL p50 ms",
    "E2E p50 ms",
    "E2E p99 ms",
)


def _errors(s: dict[str, Any], sep: str) -> str:
    """Errors by kind (`timeout 2`), joined by `sep`; "0" when there were none."""
    return sep.join(f"{k} {v}" for k, v in s["errors"].items()) or "0"


def _rates(s: dict[str, Any]) -> list[str]:
    """Request, output-token, total-token and goodput rates, as the tables show them."""
    return [
        f"{s['request_throughput']:.2f}",
        f"{s['output_token_throughput']:.1f}",
        f"{s['total_token_throughput']:.1f}",
        f"{s['goodput']:.2f}",
    ]


def summary_cells(load: str, s: dict[str, Any]) -> list[str]:
    """One level's summary as the cells under COLUMNS (the terminal, report.md, the console)."""
    return [
        load,
        str(s["succeeded"]),
        _errors(s, ", "),
        *_rates(s),
        _ms(s["ttft_s"], "median"),
        _ms(s["ttft_s"], "p99"),
        _ms(s["tpot_s"], "median"),
        _ms(s["tpot_s"], "p99"),
        _ms(s["itl_s"], "median"),
        _ms(s["latency_s"], "median"),
        _ms(s["latency_s"], "p99"),
    ]


def rows(levels: list[Level]) -> list[list[str]]:
    """One table row per load level."""
    return [summary_cells(level.run.load.label, level.summary) for level in levels]


def throughput_table(levels: list[Level]) -> Table:
    """Per level: successes, errors by kind (one a line), request, token and goodput rates."""
    table = Table(title="throughput", title_justify="left")
    table.add_column("load")
    table.add_column("ok", justify="right", no_wrap=True)
    table.add_column("errors", no_wrap=True)
    for header in ("req/s", "output\ntok/s", "total\ntok/s", "goodput\nreq/s"):
        table.add_column(header, justify="right", no_wrap=True)
    for level in levels:
        s = level.summary
        errors = _errors(s, "\n")
        table.add_row(
            level.run.load.label,
            str(s["succeeded"]),
            errors,
            *_rates(s),
            end_section="\n" in errors,  # a rule under a level whose errors take lines
        )
    return table


LATENCIES = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("latency_s", "E2E"))


def latency_table(levels: list[Level]) -> Table:
    """Per level, the p50 and p99 of TTFT, TPOT, ITL and end-to-end latency in ms, the two
    percentiles stacked as rows (so the table stays narrow)."""
    table = Table(title="latency (ms)", title_justify="left")
    table.add_column("load")
    table.add_column("", no_wrap=True)
    for _, name in LATENCIES:
        table.add_column(name, justify="right", no_wrap=True)
    for level in levels:
        s = level.summary
        for i, (stat, shown) in enumerate((("median", "p50"), ("p99", "p99"))):
            table.add_row(
                level.run.load.label if i == 0 else "",
                shown,
                *(_ms(s[key], stat) for key, _ in LATENCIES),
                end_section=i == 1,  # a rule between levels, not between their percentiles
            )
    return table


def print_summary(levels: list[Level], cost: dict[str, Any] | None, console: Console) -> None:
    """The summary as two tables (throughput; latency) that each fit 80 columns, and the cost
    lines when hardware was given."""
    console.print(throughput_table(levels))
    console.print(latency_table(levels))
    for line in cost_lines(cost):
        console.print(line)


def cost_lines(cost: dict[str, Any] | None) -> list[str]:
    """The cost figures in words."""
    if not cost:
        return []
    lines = [
        f"{cost['hardware']}: ${cost['hourly_usd']:.2f}/hour ({cost['price_source']})",
        f"at saturation ({cost['saturation_output_tokens_per_s']:.1f} output tokens/s): "
        f"${cost['usd_per_million_output_tokens_saturated']:.2f} per 1M output tokens; "
        f"at {cost['utilization']:.0%} utilisation: "
        f"${cost['usd_per_million_output_tokens']:.2f}",
    ]
    for row in cost["hosted"]:
        lines.append(
            f"  break-even vs {row['provider']} {row['api_model']}: "
            f"{row['break_even_tokens_per_day'] / 1e6:.1f}M tokens/day"
        )
    return lines


def interrupted_after(count: int) -> str:
    """'interrupted after N levels': the line a Ctrl-C ends the run with, and the report's note."""
    return f"interrupted after {count} level{'' if count == 1 else 's'}"


def markdown(levels: list[Level], meta: dict[str, Any], cost: dict[str, Any] | None) -> str:
    """The report as Markdown: what was measured, the table, the cost."""
    lines = [
        f"# llmhost bench: {meta['model']} at {meta['url']}",
        "",
        f"Workload: {meta['workload']}. Output length forced: {meta['force_length']}. "
        f"Date: {meta['date']}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(levels)]
    if meta.get("interrupted"):
        lines += [
            "",
            f"{interrupted_after(len(levels)).capitalize()} (Ctrl-C): only the levels "
            "that finished are here.",
        ]
    if cost:
        lines += ["", *[f"- {line.strip()}" for line in cost_lines(cost)]]
    return "\n".join(lines) + "\n"


def write(
    out: Path, levels: list[Level], meta: dict[str, Any], cost: dict[str, Any] | None
) -> list[Path]:
    """results.json (every request and every summary), report.md and the charts."""
    from llmhost.bench.charts import ChartContext, draw

    out.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "cost": cost,
        "levels": [
            {
                "load": lv.run.load.label,
                "concurrency": lv.run.load.concurrency,
                "rate": lv.run.load.rate,
                "stopped_by": lv.run.stopped_by,
                "summary": lv.summary,
                "requests": [r.to_dict() for r in lv.run.records],
            }
            for lv in levels
        ],
    }
    results = out / "results.json"
    results.write_text(json.dumps(data, indent=1))
    report = out / "report.md"
    report.write_text(markdown(levels, meta, cost))
    return [results, report, *draw(levels, out, ChartContext.from_meta(meta))]
