"""The progress of a benchmark as it runs: per load level, requests done of the total, errors,
the time since the level began, and rates over that level's own elapsed time.

`LevelProgress` is a pure value (the clock is passed in), so what the line says can be tested
without waiting; `Tracker` feeds it from the runner and keeps the levels measured so far (what
a Ctrl-C writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from llmhost.bench.client import Record
from llmhost.bench.load import Load
from llmhost.bench.runner import Level, Watcher


@dataclass(frozen=True)
class LevelProgress:
    """One level so far: its label, request total, start, counts and (once over) its end."""

    label: str
    total: int
    started: float
    done: int = 0
    errors: int = 0
    output_tokens: int = 0
    ended: float | None = None

    def add(self, record: Record) -> LevelProgress:
        """This progress with one more finished request."""
        return replace(
            self,
            done=self.done + 1,
            errors=self.errors + (0 if record.ok else 1),
            output_tokens=self.output_tokens + (record.output_tokens if record.ok else 0),
        )

    def end(self, now: float) -> LevelProgress:
        """This progress frozen at `now`: its rates stop moving once the level is over."""
        return replace(self, ended=now)

    def elapsed(self, now: float) -> float:
        """Seconds since the level began (up to its end once over); never negative."""
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def rates(self, now: float) -> tuple[float, float] | None:
        """(requests/s, output tokens/s) over this level's elapsed time; None until a request
        has finished (a rate over nothing, or over no time, means nothing)."""
        elapsed = self.elapsed(now)
        if self.done == 0 or elapsed <= 0:
            return None
        return (self.done - self.errors) / elapsed, self.output_tokens / elapsed

    def line(self, now: float) -> str:
        """The progress line: label, done/total, errors, elapsed, rates."""
        rates = self.rates(now)
        speed = (
            f"{rates[0]:.2f} req/s, {rates[1]:.1f} output tok/s"
            if rates
            else "waiting for the first answer"
        )
        return (
            f"{self.label}: {self.done}/{self.total} done, {self.errors} errors, "
            f"{self.elapsed(now):.1f} s, {speed}"
        )


@dataclass
class Tracker(Watcher):
    """A Watcher that keeps the current level's progress and every level measured so far;
    `on_measured` is told each finished level's final line."""

    clock: Callable[[], float] = time.perf_counter
    on_measured: Callable[[str], None] = lambda line: None
    current: LevelProgress | None = None
    levels: list[Level] = field(default_factory=list)

    def started(self, load: Load) -> None:
        """A new level: progress from zero, timed from now."""
        self.current = LevelProgress(load.label, load.requests, self.clock())

    def finished(self, load: Load, record: Record) -> None:
        """Count the request toward its level."""
        if self.current is not None and self.current.label == load.label:
            self.current = self.current.add(record)

    def measured(self, level: Level) -> None:
        """Keep the level, freeze its progress and tell its final line."""
        self.levels.append(level)
        if self.current is not None:
            self.current = self.current.end(self.clock())
            self.on_measured(self.current.line(self.clock()))

    def line(self) -> str:
        """The current line (empty before the first level starts)."""
        return self.current.line(self.clock()) if self.current else ""
