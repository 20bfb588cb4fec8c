"""How requests are offered: a fixed number in flight, or arrivals at a constant or Poisson rate,
until a request count, a duration or an error rate says stop; and sweeps over either."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmhost.bench.client import Endpoint, Record
from llmhost.bench.workload import Request
from llmhost.errors import UsageError

MIN_FOR_ERROR_RATE = 10  # requests finished before the error-rate stop may trigger


@dataclass(frozen=True)
class Load:
    """One level of load: `concurrency` in flight, or `rate` requests/s (Poisson or evenly
    spaced). Stops after `requests`, `duration_s`, or an error share above `max_error_rate`."""

    concurrency: int | None = None
    rate: float | None = None
    poisson: bool = True
    requests: int = 100
    duration_s: float | None = None
    max_error_rate: float = 1.0

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise UsageError("give one of --concurrency and --rate")
        if self.concurrency is not None and self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise UsageError("--rate must be above 0")
        if self.requests < 1:
            raise UsageError("--requests must be at least 1")

    @property
    def label(self) -> str:
        """How this level is named in reports: 'concurrency 4' or 'rate 2.0/s'."""
        if self.concurrency is not None:
            return f"concurrency {self.concurrency}"
        return f"rate {self.rate:g}/s"


@dataclass
class Run:
    """The records of one load level and its wall time."""

    load: Load
    records: list[Record]
    wall_s: float
    stopped_by: str  # requests, duration, errors


async def run_load(
    endpoint: Endpoint,
    requests: list[Request],
    load: Load,
    progress: Callable[[Record], None] = lambda r: None,
) -> Run:
    """Offer `requests` (cycled) at `load`; every request is streamed."""
    clock = time.perf_counter()
    deadline = clock + load.duration_s if load.duration_s else None
    records: list[Record] = []
    stop = asyncio.Event()
    reason = ["requests"]

    def finished(record: Record) -> None:
        records.append(record)
        progress(record)
        errors = sum(1 for r in records if not r.ok)
        if len(records) >= MIN_FOR_ERROR_RATE and errors / len(records) > load.max_error_rate:
            reason[0] = "errors"
            stop.set()

    def more(sent: int) -> bool:
        if stop.is_set() or sent >= load.requests:
            return False
        if deadline is not None and time.perf_counter() >= deadline:
            reason[0] = "duration"
            return False
        return True

    if load.concurrency is not None:
        counter = iter(range(load.requests))

        async def worker() -> None:
            for i in counter:
                if not more(i):
                    return
                finished(await endpoint.send(requests[i % len(requests)], clock))

        await asyncio.gather(*(worker() for _ in range(load.concurrency)))
    else:
        assert load.rate is not None
        rng = random.Random(0)
        tasks: list[asyncio.Task[None]] = []

        async def one(i: int) -> None:
            finished(await endpoint.send(requests[i % len(requests)], clock))

        sent, next_at = 0, clock
        while more(sent):
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(sent)))
            sent += 1
            gap = rng.expovariate(load.rate) if load.poisson else 1.0 / load.rate
            next_at += gap
        await asyncio.gather(*tasks)
    return Run(load, records, time.perf_counter() - clock, reason[0])


def concurrency_levels(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit` (a sweep stops early once throughput stops growing)."""
    levels, c = [], 1
    while c < limit:
        levels.append(c)
        c *= 2
    return [*levels, limit]


def rate_levels(low: float, high: float, steps: int) -> list[float]:
    """`steps` rates evenly between the synchronous rate and the saturated rate."""
    if steps < 2 or high <= low:
        return [high]
    return [low + (high - low) * i / (steps - 1) for i in range(steps)]
