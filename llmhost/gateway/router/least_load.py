"""Least-load: the replica doing the least, by the engine's own report when it is fresh.

The engine's running + waiting requests (scraped by the health monitor) are the truth about its
queue, including requests other gateways sent; between scrapes, or for engines without metrics,
the gateway's own in-flight count stands in. The larger of the two is used, so a burst that
arrived since the last scrape is not missed.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from llmhost.engines.replicas import Replica

FRESH_S = 5.0


def replica_load(replica: Replica, now: float | None = None) -> float:
    """How busy a replica is: max(engine running + waiting if fresh, gateway in-flight)."""
    load = replica.load
    if load is not None and (now or time.monotonic()) - replica.load_at < FRESH_S:
        return max(load.running + load.waiting, float(replica.inflight))
    return float(replica.inflight)


class LeastLoad:
    """Pick the least-loaded replica; ties go round-robin so idle replicas share the work."""

    def __init__(self) -> None:
        self._turn = 0

    def pick(
        self, key: bytes, replicas: Sequence[Replica], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        """The replica with the lowest load, skipping `exclude`."""
        now = time.monotonic()
        self._turn += 1
        best: Replica | None = None
        best_score = (float("inf"), 0)
        n = len(replicas)
        for i, replica in enumerate(replicas):
            if replica in exclude:
                continue
            score = (replica_load(replica, now), (i - self._turn) % n)
            if score < best_score:
                best, best_score = replica, score
        return best
