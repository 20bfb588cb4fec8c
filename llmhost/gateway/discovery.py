"""Replicas on a cluster: the ready endpoints of an engine's Service, read from its
EndpointSlices and published into the model's `ReplicaSet`.

Each round lists the slices labelled `kubernetes.io/service-name=<service>` (RBAC: list on
endpointslices in the namespace) and makes the replica set match the endpoints that are ready and
not terminating: new pods join as ready (the health checks then confirm them), gone ones are
withdrawn while their in-flight requests finish on the connection they hold. Polling rather than
watching keeps the code simple; a few seconds' lag is far below an engine's start-up time.

`PoolDiscovery` does the same from a Gateway API Inference Extension `InferencePool`
(`inference.networking.k8s.io/v1`): the pool's label selector and target port name the pods,
and its ready, running pods are the replicas (RBAC: get on inferencepools, list on pods), so a
cluster that standardised on the pool needs no Service for the gateway.
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
        self.match(await self.wanted())

    async def wanted(self) -> dict[str, str]:
        """Replica name -> base URL of every endpoint that should serve now."""
        selector: dict[str, Any] = {"kubernetes.io/service-name": self.service}
        slices = await api_call(self._list(selector), f"endpointslices of {self.service}")
        return ready_endpoints(slices, self.port)

    def match(self, wanted: dict[str, str]) -> None:
        """Add and withdraw replicas so the set is `wanted`."""
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


def ready_pods(pods: list[Any], port: int) -> dict[str, str]:
    """Pod name -> base URL for every running, ready pod that is not being deleted."""
    found: dict[str, str] = {}
    for pod in pods:
        status = pod.status
        if pod.metadata.deletionTimestamp is not None or status is None or not status.podIP:
            continue
        ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
        if status.phase == "Running" and ready:
            host = f"[{status.podIP}]" if ":" in status.podIP else status.podIP
            found[pod.metadata.name] = f"http://{host}:{port}"
    return found


class PoolDiscovery(EndpointDiscovery):
    """Keeps one model's replica set equal to the ready pods of an InferencePool."""

    async def wanted(self) -> dict[str, str]:
        """The pool's selector and port, then its pods."""
        from lightkube.generic_resource import create_namespaced_resource
        from lightkube.resources.core_v1 import Pod

        kind = create_namespaced_resource(
            "inference.networking.k8s.io", "v1", "InferencePool", "inferencepools"
        )
        pool = await api_call(self.client.get(kind, self.service), f"inferencepool {self.service}")
        spec = pool.get("spec") or {}
        labels: dict[str, Any] = (spec.get("selector") or {}).get("matchLabels") or {}
        ports = spec.get("targetPorts") or [{}]
        port = int(ports[0].get("number") or self.port)
        if not labels:
            raise KubernetesError(f"inferencepool {self.service} has no selector")
        pods = await api_call(self._pods(Pod, labels), f"pods of inferencepool {self.service}")
        return ready_pods(pods, port)

    async def _pods(self, kind: Any, labels: dict[str, Any]) -> list[Any]:
        return [p async for p in self.client.list(kind, labels=labels)]
