"""Active health checks: poll each replica's readiness URL and, where it has one, its metrics.

A replica that answers becomes ready; one that fails `fail_threshold` checks in a row is marked
down until it answers again. The engine's own load report (running, waiting, KV use) is kept on
the replica for the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import aiohttp

from llmhost.engines.replicas import Replica, ReplicaSet, ReplicaState


class HealthMonitor:
    """Checks every replica of every set each `interval_s` seconds."""

    def __init__(
        self,
        sets: Sequence[ReplicaSet],
        session: aiohttp.ClientSession,
        interval_s: float = 2.0,
        fail_threshold: int = 2,
    ) -> None:
        self.sets = sets
        self.session = session
        self.interval_s = interval_s
        self.fail_threshold = fail_threshold
        self._timeout = aiohttp.ClientTimeout(total=max(1.0, interval_s))

    async def run(self) -> None:
        """Check forever; cancel the task to stop."""
        while True:
            await self.check_all()
            await asyncio.sleep(self.interval_s)

    async def check_all(self) -> None:
        """One round of checks over every replica with a URL."""
        checks = [self.check(rs, r) for rs in self.sets for r in list(rs.replicas) if r.url]
        await asyncio.gather(*checks)

    async def check(self, replica_set: ReplicaSet, replica: Replica) -> None:
        """Check one replica and record the result."""
        if replica.state is ReplicaState.DRAINING:
            return  # on its way out: never promoted back
        adapter = replica_set.adapter
        ok = False
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
            async with self.session.get(
                replica.url + adapter.ready_path, timeout=self._timeout
            ) as resp:
                ok = resp.status == 200
        if ok and time.monotonic() < replica.ejected_until:
            return  # sitting out a passive ejection
        if ok:
            replica_set.set_state(replica, ReplicaState.READY)
            if adapter.metrics_path:
                await self._read_load(replica_set, replica)
            return
        replica.failures += 1
        # A managed engine that is still loading belongs to the supervisor, not to this check.
        loading = replica.state is ReplicaState.STARTING and replica.managed
        down = replica.state is ReplicaState.DOWN
        if replica.failures >= self.fail_threshold and not down and not loading:
            replica_set.set_state(replica, ReplicaState.DOWN)

    async def _read_load(self, replica_set: ReplicaSet, replica: Replica) -> None:
        assert replica_set.adapter.metrics_path is not None
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            async with self.session.get(
                replica.url + replica_set.adapter.metrics_path, timeout=self._timeout
            ) as resp:
                if resp.status == 200:
                    replica.load = replica_set.adapter.read_load(await resp.text())
                    replica.load_at = time.monotonic()
