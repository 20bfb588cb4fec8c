"""PNG charts of a benchmark (matplotlib, no display needed): throughput against load, TTFT and
TPOT percentiles against load, and the end-to-end latency CDF of each level.

Each chart is built as a Figure by its own function (so tests can read what it shows) and saved
by `save`. Concurrency is drawn on a log2 axis with the measured levels as integer ticks; every
y axis starts at zero; the title names the model, the hardware and the date; the SLOs given on
the command line are drawn as labelled lines; a chart without a successful request says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from llmhost.bench.metrics import Slo
from llmhost.bench.runner import Level

NO_SUCCESS = "no successful requests"
SLO_STYLE: dict[str, Any] = {"color": "crimson", "linestyle": ":", "linewidth": 1.5}


@dataclass(frozen=True)
class ChartContext:
    """What every chart's title and SLO lines need: the model, where it ran, when, the SLOs."""

    model: str
    hardware: str
    date: str
    slo: Slo = field(default_factory=Slo)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ChartContext:
        """The context of a results.json `meta`: hardware is the GPU and engine when known,
        else the endpoint's host (so a chart always says what was measured)."""
        known = [str(meta[k]) for k in ("gpu", "engine") if meta.get(k)]
        hardware = " / ".join(known) or _host(str(meta.get("url") or "")) or "unknown hardware"
        slo = meta.get("slo") or {}
        return cls(
            model=str(meta.get("model") or "unknown model"),
            hardware=hardware,
            date=str(meta.get("date") or "")[:10],
            slo=Slo(slo.get("ttft_s"), slo.get("tpot_s"), slo.get("latency_s")),
        )

    @property
    def title(self) -> str:
        """The figure title: model, hardware, date."""
        return " · ".join(part for part in (self.model, self.hardware, self.date) if part)


def _host(url: str) -> str:
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    return parts.hostname + (f":{parts.port}" if parts.port else "")


def _succeeded(level: Level) -> bool:
    return int(level.summary["succeeded"]) > 0


def _x(levels: list[Level]) -> tuple[list[float], str, bool]:
    """The x value of each level, the axis label, and whether it is concurrency (log2)."""
    loads = [lv.run.load for lv in levels]
    if all(load.concurrency is not None for load in loads):
        return [float(load.concurrency or 0) for load in loads], "concurrency", True
    return [float(lv.summary["request_throughput"]) for lv in levels], "requests/s", False


def _load_axis(ax: Axes, x: list[float], label: str, concurrency: bool) -> None:
    """Concurrency on a log2 axis ticked at the measured levels only, as integers."""
    ax.set_xlabel(label)
    if concurrency:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(sorted(set(x))))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{round(value)}"))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.set_xlim(left=0, right=max(x, default=1.0) * 1.05 or 1.0)


def _message(ax: Axes, text: str) -> None:
    """An axes that says why it has nothing to show, instead of a blank one."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12)


def _missing_note(ax: Axes, levels: list[Level]) -> None:
    """Name the levels that have nothing to plot (every request of them failed)."""
    failed = [lv.run.load.label for lv in levels if not _succeeded(lv)]
    if failed:
        ax.text(
            0.99,
            0.01,
            f"{NO_SUCCESS}: {', '.join(failed)}",
            ha="right",
            va="bottom",
            transform=ax.transAxes,
            fontsize="x-small",
            color="dimgray",
        )


def _sorted(x: list[float], y: list[float]) -> tuple[list[float], list[float]]:
    pairs = sorted(zip(x, y, strict=True))
    return [a for a, _ in pairs], [b for _, b in pairs]


def _figure(ctx: ChartContext, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(6 * ncols if ncols > 1 else 6.5, 4.4))
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    fig.suptitle(ctx.title, fontsize="medium")
    return fig, axes


def throughput_figure(levels: list[Level], ctx: ChartContext) -> Figure:
    """Output and total tokens/s against load."""
    fig, (ax,) = _figure(ctx)
    ax.set_title("Throughput")
    if not any(_succeeded(lv) for lv in levels):
        _message(ax, NO_SUCCESS)
        return fig
    x, label, concurrency = _x(levels)
    for key, style, name in (
        ("output_token_throughput", "o-", "output tokens/s"),
        ("total_token_throughput", "s--", "total tokens/s"),
    ):
        ax.plot(*_sorted(x, [float(lv.summary[key]) for lv in levels]), style, label=name)
    _finish_load_axes(ax, levels, x, label, concurrency, "tokens/s")
    return fig


def percentiles_figure(levels: list[Level], ctx: ChartContext) -> Figure:
    """TTFT and TPOT median, p90 and p99 against load, with the TTFT and TPOT SLOs."""
    fig, axes = _figure(ctx, ncols=2)
    x, label, concurrency = _x(levels)
    for ax, key, name, slo in (
        (axes[0], "ttft_s", "TTFT", ctx.slo.ttft_s),
        (axes[1], "tpot_s", "TPOT", ctx.slo.tpot_s),
    ):
        ax.set_title(f"{name} percentiles")
        measured = [lv for lv in levels if lv.summary[key]]
        if not measured:
            _message(ax, NO_SUCCESS if not any(map(_succeeded, levels)) else f"no {name} measured")
            continue
        for stat in ("median", "p90", "p99"):
            ms = [
                1000 * float(lv.summary[key][stat]) if lv.summary[key] else float("nan")
                for lv in levels
            ]
            ax.plot(*_sorted(x, ms), "o-", label=stat)
        if slo is not None:
            ax.axhline(1000 * slo, **SLO_STYLE, label=f"SLO {1000 * slo:g} ms")
        _finish_load_axes(ax, levels, x, label, concurrency, "ms")
    return fig


def _finish_load_axes(
    ax: Axes,
    levels: list[Level],
    x: list[float],
    label: str,
    concurrency: bool,
    ylabel: str,
) -> None:
    """The load axis, a y axis from zero, grid, legend and the note of levels with no data."""
    _load_axis(ax, x, label, concurrency)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    _missing_note(ax, levels)


def cdf_figure(levels: list[Level], ctx: ChartContext) -> Figure:
    """The share of each level's successful requests done within a latency, from (0, 0),
    with the latency SLO."""
    fig, (ax,) = _figure(ctx)
    ax.set_title("Latency CDF")
    if not any(_succeeded(lv) for lv in levels):
        _message(ax, NO_SUCCESS)
        return fig
    for level in levels:
        latencies = sorted(r.latency for r in level.run.records if r.ok)
        if latencies:
            share = [i / len(latencies) for i in range(len(latencies) + 1)]
            ax.step([0.0, *latencies], share, where="post", label=level.run.load.label)
    if ctx.slo.latency_s is not None:
        ax.axvline(ctx.slo.latency_s, **SLO_STYLE, label=f"SLO {ctx.slo.latency_s:g} s")
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("share of requests")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _missing_note(ax, levels)
    return fig


CHARTS: dict[str, Callable[[list[Level], ChartContext], Figure]] = {
    "throughput.png": throughput_figure,
    "latency_percentiles.png": percentiles_figure,
    "latency_cdf.png": cdf_figure,
}


def figures(levels: list[Level], ctx: ChartContext) -> dict[str, Figure]:
    """Every chart, by file name."""
    return {name: build(levels, ctx) for name, build in CHARTS.items()}


def save(charts: dict[str, Figure], out: Path) -> list[Path]:
    """Write each figure as a PNG into `out`; their paths."""
    paths = []
    for name, fig in charts.items():
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        paths.append(out / name)
    return paths


def draw(levels: list[Level], out: Path, ctx: ChartContext) -> list[Path]:
    """Write the three charts into `out`; their paths."""
    return save(figures(levels, ctx), out)
