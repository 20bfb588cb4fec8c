"""Round-robin: each request to the next ready replica in turn."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from llmhost.engines.replicas import Replica


class RoundRobin:
    """The baseline strategy: even spread, no knowledge of load or cache."""

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self, key: bytes, replicas: Sequence[Replica], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        """The next replica after the last one chosen, skipping `exclude`."""
        n = len(replicas)
        for i in range(n):
            replica = replicas[(self._next + i) % n]
            if replica not in exclude:
                self._next = (self._next + i + 1) % n
                return replica
        return None
