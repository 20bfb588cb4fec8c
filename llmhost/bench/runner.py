"""A whole benchmark: one load level, or a sweep over concurrency (1, 2, 4, ... until two levels
in a row add less than 10% output throughput) or over arrival rates (from the synchronous rate to
the saturated one)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llmhost.bench.client import Endpoint, Record
from llmhost.bench.load import Load, Run, concurrency_levels, rate_levels, run_load
from llmhost.bench.metrics import Slo, summarize
from llmhost.bench.workload import Workload

SATURATION_GAIN = 1.10  # a level that adds less than 10% output throughput over the best
SATURATED_LEVELS = 2  # ... twice in a row ends a concurrency sweep (the knee, then confirmed)


@dataclass
class Level:
    """One measured load level: its run and summary."""

    run: Run
    summary: dict[str, Any]


class Watcher:
    """What a benchmark tells as it goes: a level starts, a request finishes, a level is
    measured. These do nothing; a progress line (or a test) overrides them."""

    def started(self, load: Load) -> None:
        """A load level begins."""

    def finished(self, load: Load, record: Record) -> None:
        """A request of the level `load` finished (succeeded or not)."""

    def measured(self, level: Level) -> None:
        """A level finished and was summarised (what Ctrl-C keeps)."""


async def bench(
    endpoint: Endpoint,
    workload: Workload,
    load: Load,
    slo: Slo,
    sweep: str | None = None,
    max_concurrency: int = 64,
    rate_steps: int = 4,
    watcher: Watcher | None = None,
) -> list[Level]:
    """Measure `load` once, or sweep (`sweep` = "concurrency" or "rate").

    Each level draws its own requests (the workload's seed plus the level's number), so a level
    does not find the previous level's prompts in the engine's prefix cache.
    """
    drawn = 0
    watch = watcher or Watcher()

    async def measure(level: Load) -> Level:
        nonlocal drawn
        requests = replace(workload, seed=workload.seed + drawn).requests(level.requests)
        drawn += 1
        watch.started(level)
        run = await run_load(endpoint, requests, level, lambda r: watch.finished(level, r))
        measured = Level(run, summarize(run.records, run.wall_s, slo))
        watch.measured(measured)
        return measured

    if sweep is None:
        return [await measure(load)]
    levels: list[Level] = []
    if sweep == "concurrency":
        for c in concurrency_levels(max_concurrency):
            levels.append(await measure(replace(load, concurrency=c, rate=None)))
            if _saturated(levels) or levels[-1].run.stopped_by == "errors":
                break
        return levels
    # rate: the synchronous rate (one at a time) and the saturated rate bound the sweep
    sync = await measure(replace(load, concurrency=1, rate=None))
    peak = await measure(replace(load, concurrency=max_concurrency, rate=None))
    low = sync.summary["request_throughput"]
    high = peak.summary["request_throughput"]
    for rate in rate_levels(low, high, rate_steps):
        if rate > 0:
            levels.append(await measure(replace(load, concurrency=None, rate=rate)))
    return [sync, *levels, peak]


def _saturated(levels: list[Level]) -> bool:
    throughput = [float(lv.summary["output_token_throughput"]) for lv in levels]
    if len(throughput) <= SATURATED_LEVELS:
        return False
    best = max(throughput[:-SATURATED_LEVELS])
    return all(t < best * SATURATION_GAIN for t in throughput[-SATURATED_LEVELS:])


def saturation_throughput(levels: list[Level]) -> float:
    """The highest output tokens/s any level reached: what the hardware does flat out."""
    return max((float(lv.summary["output_token_throughput"]) for lv in levels), default=0.0)
