"""Measured load levels made by hand (records with chosen times), for tests of what the bench
shows and writes: no endpoint needed."""

from __future__ import annotations

from llmhost.bench.client import Record
from llmhost.bench.load import Load, Run
from llmhost.bench.metrics import summarize
from llmhost.bench.runner import Level


def record(start: float, ttft: float, latency: float, tokens: int = 8) -> Record:
    """A successful request: first chunk after `ttft`, evenly spaced chunks up to `latency`."""
    step = (latency - ttft) / max(1, tokens - 1)
    chunks = [start + ttft + i * step for i in range(tokens)]
    return Record(
        start=start,
        end=start + latency,
        chunks=chunks,
        prompt_tokens=10,
        output_tokens=tokens,
        status=200,
    )


def failed(start: float, error: str = "http_5xx") -> Record:
    """A request that failed with `error`."""
    return Record(start=start, end=start + 0.05, error=error, status=500, detail="boom")


def level(
    records: list[Record],
    concurrency: int | None = None,
    rate: float | None = None,
    wall_s: float = 2.0,
) -> Level:
    """A measured level of `records` at `concurrency` (or `rate`), summarised as the bench does."""
    load = Load(concurrency=concurrency, rate=rate, requests=max(1, len(records)))
    return Level(Run(load, records, wall_s, "requests"), summarize(records, wall_s))


def sweep(concurrencies: list[int], n: int = 5) -> list[Level]:
    """A concurrency sweep whose TTFT and latency grow with load."""
    return [
        level([record(0.1 * i, 0.05 * c, 0.3 * c + 0.01 * i) for i in range(n)], concurrency=c)
        for c in concurrencies
    ]
