"""Routing: which replica of a model takes a request. One module per strategy:
`round_robin` (the baseline), `least_load` (by the engines' own load reports) and `prefix`
(consistent hashing with bounded loads on the prompt prefix, for prefix-cache hits)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from llmhost.engines.replicas import Replica


class RoutingStrategy(Protocol):
    """Chooses one of the ready replicas, or None when every one is excluded."""

    def pick(
        self, key: bytes, replicas: Sequence[Replica], exclude: Collection[Replica] = ()
    ) -> Replica | None:
        """`key` identifies the request for affinity (its prompt prefix; empty if unused)."""
        ...


def strategy(name: str, load_factor: float = 1.25, slots: int | None = None) -> RoutingStrategy:
    """The strategy called `name` in config."""
    from llmhost.gateway.router.least_load import LeastLoad
    from llmhost.gateway.router.prefix import PrefixAffinity
    from llmhost.gateway.router.round_robin import RoundRobin

    if name == "prefix":
        return PrefixAffinity(load_factor, slots)
    if name == "least-load":
        return LeastLoad()
    return RoundRobin()
