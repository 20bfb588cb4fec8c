"""The autoscaler: replicas per model from in-flight load, and to and from zero.

Each second it compares the model's load (engine-reported running + waiting where fresh, else the
gateway's in-flight count, plus requests queued) with `target_inflight` per replica, and asks the
scaler for ceil(load / target) replicas within [min, max], once the wish has held for
`scale_up_delay_s` (up) or `scale_down_delay_s` (down). With `idle_to_zero_s` and min 0, a model
with no request for that long goes to zero replicas; the next request wakes it at once and waits
in the queue while a replica starts (the activator), instead of failing.

`Scaler` is the one interface for where replicas come from: the local supervisor here, the
Kubernetes Deployment scale subresource on a cluster.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from llmhost.config import ModelConfig
from llmhost.errors import LlmhostError
from llmhost.gateway.metrics import GatewayMetrics
from llmhost.gateway.router.least_load import replica_load
from llmhost.gateway.routes import Route

if TYPE_CHECKING:
    from llmhost.gateway.leader import Coordination

log = logging.getLogger("llmhost.scaling")


class Scaler(Protocol):
    """Where a model's replicas come from."""

    @property
    def count(self) -> int:
        """Replicas asked for now."""
        ...

    async def scale(self, count: int, wait: bool = True) -> None:
        """Run `count` replicas (optionally waiting until a new one is ready)."""
        ...


class Autoscaler:
    """Scales one model's replicas by its load; wakes it from zero on demand."""

    def __init__(
        self, route: Route, scaler: Scaler, config: ModelConfig, metrics: GatewayMetrics
    ) -> None:
        self.route = route
        self.scaler = scaler
        self.config = config
        self.metrics = metrics
        self.low, self.high = config.bounds
        self.target = config.target_inflight or float(config.parallel)
        self._wish_since: float | None = None
        self._wish = -1
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # Several gateways: only the Lease holder writes replicas, on every gateway's demand.
        self.coordination: Coordination | None = None
        if self.low == 0:
            route.wake = self.wake

    def load(self) -> float:
        """Requests on the model's replicas now, plus those waiting in its queue."""
        now = time.monotonic()
        local = (
            sum(replica_load(r, now) for r in self.route.replica_set.replicas) + self.route.queued
        )
        if self.coordination is None:
            return local
        self.coordination.report(self.route.name, local)
        return local + self.coordination.others(self.route.name)

    def desired(self, now: float, current: int) -> int:
        """Replicas the load calls for, within bounds. A model at zero stays there until a
        request wakes it; one with replicas goes to zero only after the idle period."""
        load = self.load()
        if load == 0:
            idle = self.config.idle_to_zero_s
            if current == 0 or (idle is not None and now - self.route.last_active >= idle):
                return self.low
        want = math.ceil(load / self.target) if load else 1
        return max(self.low, 1, min(self.high, want))

    def wake(self) -> None:
        """A request arrived for a model at zero: start a replica now (the request waits).
        A follower only counts it: the leader sees it in the demand and scales."""
        if self.coordination is not None and not self.coordination.leading:
            self.load()
            return
        if self.scaler.count == 0 and not self._lock.locked():
            self._spawn(self._scale(max(1, self.low), "a request arrived at zero replicas"))

    async def run(self, interval_s: float = 1.0) -> None:
        """Decide every `interval_s` until cancelled."""
        while True:
            try:
                await self.step()
            except LlmhostError as exc:  # e.g. the Kubernetes API refused; try again later
                log.warning("scaling %s: %s", self.route.name, exc)
            await asyncio.sleep(interval_s)

    async def step(self, now: float | None = None) -> None:
        """One decision."""
        now = time.monotonic() if now is None else now
        current = self.scaler.count
        want = self.desired(now, current)
        self.metrics.replicas.labels(self.route.name).set(current)
        self.metrics.desired_replicas.labels(self.route.name).set(want)
        if self.coordination is not None and not self.coordination.leading:
            self._wish_since = None  # a follower never writes the replica count
            return
        if want == current:
            self._wish_since = None
            return
        if want != self._wish or self._wish_since is None:
            self._wish, self._wish_since = want, now
        delay = self.config.scale_up_delay_s if want > current else self.config.scale_down_delay_s
        if want == 0 or current == 0 or now - self._wish_since >= delay:
            load = self.load()
            await self._scale(
                want, f"load {load:g} for target {self.target:g} per replica" if want else "idle"
            )
            self._wish_since = None

    async def _scale(self, count: int, reason: str) -> None:
        async with self._lock:
            current = self.scaler.count
            if count == current:
                return
            direction = "up" if count > current else "down"
            log.info(
                "scaling %s from %d to %d replicas: %s", self.route.name, current, count, reason
            )
            self.metrics.scale_events.labels(self.route.name, direction).inc()
            await self.scaler.scale(count, wait=False)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
