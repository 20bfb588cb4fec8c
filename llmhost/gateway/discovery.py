"""Replicas on a cluster: the ready endpoints of an engine's Service, read from its
EndpointSlices and published into the model's `ReplicaSet`.

Each round lists the slices labelled `kubernetes.io/service-name=<service>` (RBAC: list on
endpointslices in the namespace) and makes the replica set match the endpoints that are ready and
not terminating: new pods join as ready (the health checks then confirm them), gone ones are
withdrawn while their in-flight requests finish on the connection they hold. Polling rather than
watching keeps the code simple; a few seconds' lag is far below an engine's start-up time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.discovery_v1 import EndpointSlice

from llmhost.engines.replicas import Replica, ReplicaSet, ReplicaState
from llmhost.gateway.kube_api import KubernetesError, api_call

log = logging.getLogger("llmhost.discovery")


def ready_endpoints(slices: list[Any], port: int) -> dict[str, str]:
    """Pod name (or address) -> base URL for every ready, non-terminating endpoint."""
    found: dict[str, str] = {}
    for item in slices:
        for endpoint in item.endpoints or []:
            conditions = endpoint.conditions
            # An unset `ready` means ready (the API's own convention).
            if conditions is not None and (conditions.ready is False or conditions.terminating):
                continue
            for address in endpoint.addresses[:1]:
                host = f"[{address}]" if ":" in address else address
                name = endpoint.targetRef.name if endpoint.targetRef else address
                found[name] = f"http://{host}:{port}"
    return found


class EndpointDiscovery:
    """Keeps one model's replica set equal to its Service's ready endpoints."""

    def __init__(
        self,
        replica_set: ReplicaSet,
        client: AsyncClient,
        service: str,
        port: int,
        poll_s: float = 2.0,
    ) -> None:
        self.replica_set = replica_set
        self.client = client
        self.service = service
        self.port = port
        self.poll_s = poll_s

    async def run(self) -> None:
        """Poll forever (cancel to stop); API errors are logged and retried next round."""
        while True:
            try:
                await self.sync()
            except KubernetesError as exc:
                log.warning("endpoints of %s: %s", self.service, exc)
            await asyncio.sleep(self.poll_s)

    async def sync(self) -> None:
        """One round: read the slices and add or withdraw replicas to match."""
        selector: dict[str, Any] = {"kubernetes.io/service-name": self.service}
        slices = await api_call(self._list(selector), f"endpointslices of {self.service}")
        wanted = ready_endpoints(slices, self.port)
        for replica in list(self.replica_set.replicas):
            if wanted.get(replica.id) != replica.url:
                self.replica_set.remove(replica)
        have = {r.id for r in self.replica_set.replicas}
        for name, url in sorted(wanted.items()):
            if name not in have:
                replica = Replica(id=name, url=url, state=ReplicaState.READY)
                self.replica_set.add(replica)
                log.info("%s: replica %s at %s joined", self.replica_set.model, name, url)

    async def _list(self, selector: dict[str, Any]) -> list[Any]:
        return [s async for s in self.client.list(EndpointSlice, labels=selector)]
