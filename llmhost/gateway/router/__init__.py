"""Routing: which replica of a model takes a request. One module per strategy.

[4 of 6] adds least-load and prefix strategies behind the same `pick`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from llmhost.engines.replicas import Replica


class RoutingStrategy(Protocol):
    """Chooses one of the ready replicas, or None when every one is excluded."""

    def pick(
        self, key: bytes, replicas: Sequence[Replica], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        """`key` identifies the request for affinity (e.g. its prompt prefix)."""
        ...
