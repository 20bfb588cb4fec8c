"""One autoscaler at a time: gateway replicas elect a leader through a Kubernetes Lease, and
only the leader writes engine replica counts.

Every gateway holds requests of its own (in flight and queued), so the leader must scale on the
sum. Each gateway publishes its per-model demand on a `DemandBoard` (Redis, shared by the
gateways already for limits; entries expire, so a gateway that dies stops counting), and the
leader adds what the others published to its own load. Followers never patch a Deployment.

The election is the client-go pattern on a `coordination.k8s.io/v1` Lease: the holder renews
`renewTime` every `renew_s`; anyone may take a Lease whose `renewTime` is older than
`leaseDurationSeconds`; every write carries the `resourceVersion` it read, so of two
contenders the API server lets one win (409 Conflict for the other). A leader that cannot renew
within its own lease duration steps down before anyone else may take over, so two never lead at
once. RBAC: get, create and update on `leases` in the gateway's namespace.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

log = logging.getLogger("llmhost.leader")
DEMAND_PREFIX = "llmhost:demand:"


class DemandBoard(Protocol):
    """Where gateways leave their per-model demand for the leader."""

    async def publish(self, identity: str, demand: dict[str, float], ttl_s: float) -> None:
        """Record this gateway's demand per model; it lapses after `ttl_s` unless renewed."""
        ...

    async def others(self, identity: str) -> dict[str, float]:
        """The demand per model every other live gateway published, summed."""
        ...


class MemoryBoard:
    """A board in this process: for one gateway (nothing to forward) and for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[float, dict[str, float]]] = {}
        self._clock = clock

    async def publish(self, identity: str, demand: dict[str, float], ttl_s: float) -> None:
        """Keep `demand` until `ttl_s` from now."""
        self._entries[identity] = (self._clock() + ttl_s, dict(demand))

    async def others(self, identity: str) -> dict[str, float]:
        """Sum of the unexpired entries of the other gateways."""
        now = self._clock()
        total: dict[str, float] = {}
        for who, (until, demand) in self._entries.items():
            if who != identity and until > now:
                for model, load in demand.items():
                    total[model] = total.get(model, 0.0) + load
        return total


class RedisBoard:
    """The board in Redis: one hash per gateway, expiring unless the gateway renews it."""

    def __init__(self, url: str, prefix: str = DEMAND_PREFIX) -> None:
        from redis.asyncio import Redis

        self.redis: Any = Redis.from_url(url, decode_responses=True)
        self.prefix = prefix

    async def publish(self, identity: str, demand: dict[str, float], ttl_s: float) -> None:
        """Replace this gateway's hash and set its expiry, in one transaction."""
        key = self.prefix + identity
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if demand:
                pipe.hset(key, mapping={m: repr(v) for m, v in demand.items()})
                pipe.pexpire(key, max(1, int(ttl_s * 1000)))
            await pipe.execute()

    async def others(self, identity: str) -> dict[str, float]:
        """Sum of every other gateway's hash."""
        total: dict[str, float] = {}
        async for key in self.redis.scan_iter(match=self.prefix + "*", count=100):
            if key == self.prefix + identity:
                continue
            for model, value in (await self.redis.hgetall(key)).items():
                total[model] = total.get(model, 0.0) + float(value)
        return total

    async def close(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


class LeaseElector:
    """Holds or watches one Lease; `leading` is true only while this identity holds it."""

    def __init__(
        self,
        client: AsyncClient,
        name: str,
        identity: str,
        namespace: str | None = None,
        lease_s: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`lease_s`: how long a Lease lasts unrenewed; another gateway takes over within
        about that long after the leader is lost."""
        self.client = client
        self.name = name
        self.identity = identity
        self.namespace = namespace
        self.lease_s = lease_s
        self._clock = clock
        self._valid_until = 0.0  # monotonic time our last successful renewal is good until

    @property
    def leading(self) -> bool:
        """True while our last renewal still holds (stepping down before the Lease lapses)."""
        return self._clock() < self._valid_until

    async def step(self) -> bool:
        """One attempt to acquire or renew; whether we lead afterwards."""
        started = self._clock()
        try:
            won = await self._acquire_or_renew()
        except ApiError as exc:
            if exc.status.code != 409:  # a conflict just means someone else wrote first
                log.warning("lease %s: %s %s", self.name, exc.status.code, exc.status.message)
            won = False
        except Exception as exc:  # the API server is unreachable: keep what is still valid
            log.warning("lease %s: %s", self.name, exc)
            return self.leading
        if won:
            if not self.leading:
                log.info("%s now leads (lease %s)", self.identity, self.name)
            self._valid_until = started + self.lease_s
        elif self.leading:
            log.info("%s no longer leads (lease %s)", self.identity, self.name)
            self._valid_until = 0.0
        return self.leading

    async def run(self, renew_s: float = 2.0) -> None:
        """Acquire or renew every `renew_s` until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(renew_s)

    async def release(self) -> None:
        """Give the Lease up (at shutdown), so another gateway leads at once."""
        if not self.leading:
            return
        self._valid_until = 0.0
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec is not None and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                lease.spec.renewTime = None
                await self.client.replace(lease)
        except Exception as exc:  # the Lease then simply expires
            log.warning("releasing lease %s: %s", self.name, exc)

    async def _acquire_or_renew(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            await self.client.create(
                Lease(
                    metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                    spec=self._spec(now, now, 0),
                )
            )
            return True
        spec = lease.spec or LeaseSpec()
        mine = spec.holderIdentity == self.identity
        if not mine and spec.holderIdentity and not _expired(spec, now):
            return False
        acquired = spec.acquireTime if mine and spec.acquireTime else now
        transitions = (spec.leaseTransitions or 0) + (0 if mine else 1)
        lease.spec = self._spec(now, acquired, transitions)
        await self.client.replace(lease)  # carries the resourceVersion read: 409 if stale
        return True

    def _spec(self, now: dt.datetime, acquired: dt.datetime, transitions: int) -> LeaseSpec:
        return LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.lease_s,
            acquireTime=acquired,
            renewTime=now,
            leaseTransitions=transitions,
        )


def _expired(spec: LeaseSpec, now: dt.datetime) -> bool:
    if spec.renewTime is None:
        return True
    renewed = spec.renewTime
    if renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=dt.UTC)
    return (now - renewed).total_seconds() > (spec.leaseDurationSeconds or 0)


class Coordination:
    """What an autoscaler asks: may I write replicas, and how much demand do the other
    gateways hold. `run` keeps the election and the board current."""

    def __init__(self, elector: LeaseElector, board: DemandBoard, ttl_s: float = 6.0) -> None:
        self.elector = elector
        self.board = board
        self.ttl_s = ttl_s
        self.local: dict[str, float] = {}  # this gateway's demand per model, set by autoscalers
        self.remote: dict[str, float] = {}  # the others', as last read (leader only)
        # Called on taking the lead: re-read replica counts the previous leader may have set.
        self.on_lead: list[Callable[[], Awaitable[Any]]] = []

    @property
    def leading(self) -> bool:
        """Whether this gateway's autoscalers may write replica counts now."""
        return self.elector.leading

    def report(self, model: str, demand: float) -> None:
        """This gateway's demand for `model` (requests in flight and queued here)."""
        self.local[model] = demand

    def others(self, model: str) -> float:
        """Demand for `model` held by the other gateways (0 unless leading)."""
        return self.remote.get(model, 0.0) if self.leading else 0.0

    async def step(self) -> None:
        """Elect, publish our demand, and (leading) read the others'."""
        was = self.leading
        await self.elector.step()
        if self.leading and not was:
            for refresh in self.on_lead:
                try:
                    await refresh()
                except Exception as exc:  # scale from the last count seen; the next patch fixes it
                    log.warning("after taking the lead: %s", exc)
        try:
            await self.board.publish(self.elector.identity, self.local, self.ttl_s)
            self.remote = await self.board.others(self.elector.identity) if self.leading else {}
        except Exception as exc:  # the board is down: scale on what this gateway sees
            log.warning("demand board: %s", exc)
            self.remote = {}

    async def run(self, interval_s: float = 2.0) -> None:
        """`step` every `interval_s` until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(interval_s)


def cluster_coordination(
    autoscalers: list[Any], lease: str | None, redis_url: str | None, identity: str | None = None
) -> Coordination | None:
    """Coordination for the autoscalers that scale Deployments, when a Lease is configured:
    elected through `lease` in the pod's namespace, demand shared through Redis (in-process
    without one: a single gateway)."""
    from llmhost.gateway.kube_api import api_client
    from llmhost.gateway.kubernetes_scaler import KubernetesScaler

    cluster = [a for a in autoscalers if isinstance(a.scaler, KubernetesScaler)]
    if lease is None or not cluster:
        return None
    client = api_client(None)
    elector = LeaseElector(client, lease, identity or socket.gethostname())
    board: DemandBoard = RedisBoard(redis_url) if redis_url else MemoryBoard()
    coordination = Coordination(elector, board)
    for autoscaler in cluster:
        autoscaler.coordination = coordination
        coordination.on_lead.append(autoscaler.scaler.refresh)
    return coordination


async def close(coordination: Coordination) -> None:
    """Hand the Lease over and close the clients (at shutdown)."""
    await coordination.elector.release()
    await coordination.elector.client.close()
    if isinstance(coordination.board, RedisBoard):
        await coordination.board.close()
