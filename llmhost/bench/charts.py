"""PNG charts of a benchmark (matplotlib, no display needed): throughput against load, TTFT and
TPOT percentiles against load, and the end-to-end latency CDF of each level."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from llmhost.bench.runner import Level


def _x(levels: list[Level]) -> tuple[list[float], str]:
    loads = [lv.run.load for lv in levels]
    if all(load.concurrency is not None for load in loads):
        return [float(load.concurrency or 0) for load in loads], "concurrency"
    return [lv.summary["request_throughput"] for lv in levels], "offered load (requests/s)"


def draw(levels: list[Level], out: Path) -> list[Path]:
    """Write the three charts into `out`; their paths."""
    x, label = _x(levels)
    paths = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, [lv.summary["output_token_throughput"] for lv in levels], "o-",
            label="output tokens/s")  # fmt: skip
    ax.plot(x, [lv.summary["total_token_throughput"] for lv in levels], "s--",
            label="total tokens/s")  # fmt: skip
    ax.set_xlabel(label)
    ax.set_ylabel("tokens/s")
    ax.set_title("Throughput")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(fig, out / "throughput.png"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, title in ((left, "ttft_s", "TTFT"), (right, "tpot_s", "TPOT")):
        for stat in ("median", "p90", "p99"):
            values = [(lv.summary[key] or {}).get(stat) for lv in levels]
            axis.plot(x, [v * 1000 if v is not None else float("nan") for v in values], "o-",
                      label=stat)  # fmt: skip
        axis.set_xlabel(label)
        axis.set_ylabel("ms")
        axis.set_title(f"{title} percentiles")
        axis.grid(alpha=0.3)
        axis.legend()
    paths.append(_save(fig, out / "latency_percentiles.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for level in levels:
        latencies = sorted(r.latency for r in level.run.records if r.ok)
        if latencies:
            share = [(i + 1) / len(latencies) for i in range(len(latencies))]
            ax.step(latencies, share, where="post", label=level.run.load.label)
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("share of requests")
    ax.set_title("Latency CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    paths.append(_save(fig, out / "latency_cdf.png"))
    return paths


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
