"""The live progress line: what it says from the first second of every level, with rates over
that level's own elapsed time (a fake clock, so nothing waits)."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from llmhost.bench.load import Load
from llmhost.bench.progress import LevelProgress, Tracker
from llmhost.bench.report import live_progress
from llmhost.bench.runner import Level, Watcher
from tests.support.bench import failed, level, record


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_before_any_answer_the_line_shows_the_level_and_no_rate() -> None:
    progress = LevelProgress("concurrency 1", total=8, started=100.0)
    assert progress.rates(100.0) is None and progress.rates(103.0) is None
    assert progress.line(100.0) == (
        "concurrency 1: 0/8 done, 0 errors, 0.0 s, waiting for the first answer"
    )
    assert "3.0 s" in progress.line(103.0)  # the clock runs from the level's start


def test_rates_are_over_the_levels_own_elapsed_time() -> None:
    progress = LevelProgress("concurrency 4", total=10, started=50.0)
    for _ in range(4):
        progress = progress.add(record(0.0, 0.1, 0.5, tokens=20))
    progress = progress.add(failed(0.0))
    assert (progress.done, progress.errors, progress.output_tokens) == (5, 1, 80)
    assert progress.rates(52.0) == pytest.approx((2.0, 40.0))  # 4 ok and 80 tokens in 2 s
    assert progress.line(52.0) == (
        "concurrency 4: 5/10 done, 1 errors, 2.0 s, 2.00 req/s, 40.0 output tok/s"
    )
    ended = progress.end(54.0)
    assert ended.rates(500.0) == pytest.approx((1.0, 20.0))  # frozen at the level's end
    assert ended.elapsed(500.0) == 4.0
    assert progress.elapsed(40.0) == 0.0  # a clock before the start is no negative window
    assert progress.rates(50.0) is None  # nor a zero one


def test_the_tracker_restarts_the_window_for_every_level() -> None:
    clock, lines = Clock(), []
    tracker = Tracker(clock=clock, on_measured=lines.append)
    assert tracker.line() == ""
    first, second = Load(concurrency=1, requests=2), Load(concurrency=2, requests=2)
    tracker.started(first)
    assert tracker.line().startswith("concurrency 1: 0/2 done")  # the first level, at once
    clock.now += 1.0
    tracker.finished(first, record(0.0, 0.1, 0.5, tokens=10))
    tracker.finished(first, record(0.0, 0.1, 0.5, tokens=10))
    clock.now += 1.0
    done = level([record(0.0, 0.1, 0.5, tokens=10)] * 2, concurrency=1)
    tracker.measured(done)
    assert lines == ["concurrency 1: 2/2 done, 0 errors, 2.0 s, 1.00 req/s, 10.0 output tok/s"]
    assert tracker.levels == [done]
    clock.now += 30.0  # a pause between levels is in neither level's window
    tracker.started(second)
    clock.now += 0.5
    tracker.finished(second, record(0.0, 0.1, 0.4, tokens=10))
    assert tracker.line() == (
        "concurrency 2: 1/2 done, 0 errors, 0.5 s, 2.00 req/s, 20.0 output tok/s"
    )
    tracker.finished(first, record(0.0, 0.1, 0.4, tokens=10))  # a stray from another level
    assert tracker.current is not None and tracker.current.done == 1


def test_live_progress_prints_the_first_levels_line() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120)  # not a terminal: each level's final line only
    tracker = Tracker(on_measured=console.print)

    async def run(watcher: Watcher) -> list[Level]:
        load = Load(concurrency=1, requests=3)
        watcher.started(load)
        records = [record(0.0, 0.01, 0.02, tokens=4) for _ in range(3)]
        for r in records:
            await asyncio.sleep(0.01)
            watcher.finished(load, r)
        measured = level(records, concurrency=1)
        watcher.measured(measured)
        return [measured]

    levels = asyncio.run(live_progress(console, tracker, run))
    assert len(levels) == 1
    line = out.getvalue().strip()
    assert line.startswith("concurrency 1: 3/3 done, 0 errors, ")
    assert "output tok/s" in line and "waiting" not in line
