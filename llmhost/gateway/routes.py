"""What the gateway knows about each served model: names, replicas, strategy, upstream headers,
and the bounded queue where requests wait for a replica with room (or for one to start).

A request that finds every ready replica at capacity, or none ready while one is starting or the
model can be woken from zero, waits in the queue for up to `queue_wait_s`; a full queue, or a
model with nothing ready, starting or wakeable, is refused at once (503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from llmhost.config import ModelConfig
from llmhost.engines.replicas import Replica, ReplicaSet, ReplicaState
from llmhost.gateway.metrics import ModelMetrics
from llmhost.gateway.router import RoutingStrategy, strategy


class Route:
    """One model as the request path needs it, resolved once at start-up."""

    def __init__(self, config: ModelConfig, replica_set: ReplicaSet, metrics: ModelMetrics) -> None:
        self.config = config
        self.name = config.name
        self.upstream_model = config.upstream_model or config.name
        self.replica_set = replica_set
        self.metrics = metrics
        self.strategy: RoutingStrategy = strategy(
            config.routing, config.load_factor, slots=config.parallel
        )
        self.keyed = config.routing == "prefix"
        self.capacity = config.capacity
        self.headers = b""  # extra header lines for the engine, each ending in CRLF
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if key:  # engine credentials come from config, never from the client
                self.headers = f"Authorization: Bearer {key}\r\n".encode()
        self.wake: Callable[[], None] | None = None  # set when the model can scale from zero
        self.canary_of: Route | None = None  # the model this one takes a canary share of
        self.queued = 0
        self.last_active = time.monotonic()
        self._waiters: list[asyncio.Future[None]] = []
        replica_set.on_change(lambda rs, r: self.notify())

    def notify(self) -> None:
        """Something changed (a request ended, a replica's state moved): re-check the queue."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def servable(self) -> bool:
        """Whether a request could be served here: a replica is ready, or one may become so."""
        return bool(self.replica_set.ready()) or self._can_wait()

    def _can_wait(self) -> bool:
        """Whether waiting could help: a replica is ready or starting, or the model can wake."""
        if self.wake is not None:
            return True
        return any(r.state is not ReplicaState.DOWN for r in self.replica_set.replicas)

    async def acquire(
        self, key: bytes, exclude: Collection[Replica], deadline: float | None
    ) -> Replica | None:
        """A ready replica with room, waiting in the queue until `deadline` (None: no wait)."""
        self.last_active = time.monotonic()
        while True:
            ready = [r for r in self.replica_set.ready() if r.inflight < self.capacity]
            replica = self.strategy.pick(key, ready, exclude)
            if replica is not None:
                return replica
            if deadline is None or self.queued >= self.config.queue_size or not self._can_wait():
                return None
            if not self.replica_set.ready() and self.wake is not None:
                self.wake()
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self.queued += 1
            try:
                await asyncio.wait_for(waiter, min(left, 1.0))  # re-check at least every second
            except TimeoutError:
                pass
            finally:
                self.queued -= 1


class ModelDirectory:
    """Every name a request may use (model names, aliases, tiers) and the route each leads to.

    A model with a `canary` sends that share of its requests (at random, as a mesh's weighted
    route does) to the canary's model while the canary has a ready replica; the rest, and all
    of them while it has none, stay on the model itself.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        tiers: Mapping[str, Sequence[str]],
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.draw = draw
        self.routes = list(routes)
        self.tiers = {name: tuple(chain) for name, chain in tiers.items()}
        self.by_name: dict[str, Route] = {}
        for route in self.routes:
            for name in (route.name, *route.config.aliases):
                self.by_name[name] = route
        for route in self.routes:
            if route.config.canary is not None:
                self.by_name[route.config.canary.model].canary_of = route

    def choose(self, model: str, tier: str | None) -> Route | None:
        """The route for a request: the tier's (header, else a tier named as the model) or the
        model's chain (itself, then its fallbacks), first one that can serve; None if unknown."""
        if tier is not None and tier in self.tiers:
            chain = [self.by_name[name] for name in self.tiers[tier]]
        elif model in self.tiers:
            chain = [self.by_name[name] for name in self.tiers[model]]
        elif model in self.by_name:
            first = self.by_name[model]
            chain = [first, *(self.by_name[name] for name in first.config.fallback)]
        else:
            return None
        chosen = next((route for route in chain if route.servable()), chain[0])
        canary = chosen.config.canary
        if canary is not None and self.draw() * 100 < canary.percent:
            trial = self.by_name[canary.model]
            if trial.replica_set.ready():  # a canary takes traffic only once it is up
                return trial
        return chosen

    def names_for(self, allowed: Callable[[Route], bool]) -> list[str]:
        """Model names and aliases a caller may use (by `allowed`), then the tiers."""
        return [name for name, route in self.by_name.items() if allowed(route)] + list(self.tiers)
