"""The figures of a run, as vLLM's benchmark reports them.

- TTFT: time from sending to the first content chunk.
- TPOT: (latency - TTFT) / (output tokens - 1), per request with at least 2 output tokens.
- ITL: every gap between consecutive content chunks, over all requests.
- E2E latency: time from sending to the last byte.
- Request throughput: successful requests / wall time.
- Output token throughput: output tokens of successful requests / wall time; total token
  throughput adds their prompt tokens.
- Goodput: successful requests that meet every given SLO (TTFT, TPOT, latency) / wall time.
Each distribution is given as mean, median, p90, p95 and p99 (linear interpolation).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmhost.bench.client import Record

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Slo:
    """Service-level objectives a request must meet to count toward goodput (None: any)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    latency_s: float | None = None

    def met(self, record: Record) -> bool:
        """Whether `record` succeeded within every objective."""
        if not record.ok:
            return False
        checks = (
            (self.ttft_s, record.ttft),
            (self.tpot_s, record.tpot),
            (self.latency_s, record.latency),
        )
        return all(
            limit is None or (value is not None and value <= limit) for limit, value in checks
        )


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile with linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: Sequence[float]) -> dict[str, float] | None:
    """mean, median, p90, p95, p99 of `values` (None when there are none)."""
    if not values:
        return None
    stats = {"mean": statistics.fmean(values)}
    for p in PERCENTILES:
        stats["median" if p == 50 else f"p{p}"] = percentile(values, p)
    return stats


def summarize(records: Sequence[Record], wall_s: float, slo: Slo | None = None) -> dict[str, Any]:
    """Every headline figure of one run."""
    ok = [r for r in records if r.ok]
    output = sum(r.output_tokens for r in ok)
    prompt = sum(r.prompt_tokens for r in ok)
    slo = slo or Slo()
    return {
        "requests": len(records),
        "succeeded": len(ok),
        "errors": dict(sorted(Counter(r.error for r in records if r.error).items())),
        "wall_s": wall_s,
        "request_throughput": len(ok) / wall_s if wall_s else 0.0,
        "output_token_throughput": output / wall_s if wall_s else 0.0,
        "total_token_throughput": (output + prompt) / wall_s if wall_s else 0.0,
        "goodput": sum(1 for r in records if slo.met(r)) / wall_s if wall_s else 0.0,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "ttft_s": distribution([r.ttft for r in ok if r.ttft is not None]),
        "tpot_s": distribution([r.tpot for r in ok if r.tpot is not None]),
        "itl_s": distribution([gap for r in ok for gap in r.itl]),
        "latency_s": distribution([r.latency for r in ok]),
    }
