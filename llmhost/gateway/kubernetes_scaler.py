"""The Kubernetes implementation of `Scaler`: a model's replicas are an engine Deployment's.

Scaling patches the Deployment's `scale` subresource (RBAC: get and patch on
`deployments/scale`, get on `deployments`, in the gateway's namespace only); readiness is read
from the Deployment's status. Replica endpoints reach the gateway through its Service (or
EndpointSlices), so this scaler only decides how many there are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from llmhost.gateway.kube_api import KubernetesError, api_call, api_client

__all__ = ["KubernetesError", "KubernetesScaler"]
log = logging.getLogger("llmhost.kubernetes")


class KubernetesScaler:
    """Scales one engine Deployment; `count` is its desired replicas as last seen or set."""

    def __init__(
        self,
        deployment: str,
        namespace: str | None = None,
        server: str | None = None,
        token: str = "",
    ) -> None:
        """In a pod, the in-cluster service account is used; `server` (and `token`) name
        another API server instead. No `namespace`: the pod's own."""
        self.deployment = deployment
        self.client = api_client(namespace, server, token)
        self.namespace: str = namespace or self.client.namespace
        self._count = 0

    @property
    def count(self) -> int:
        """Replicas asked for (spec.replicas), as last read or patched."""
        return self._count

    async def refresh(self) -> int:
        """Read spec.replicas from the scale subresource."""
        scale: Any = await self._call(
            self.client.get(Deployment.Scale, self.deployment, namespace=self.namespace)
        )
        self._count = int(scale.spec.replicas or 0)
        return self._count

    async def scale(self, count: int, wait: bool = True) -> None:
        """Set spec.replicas through the scale subresource; with `wait`, until one is ready."""
        await self._call(
            self.client.patch(
                Deployment.Scale,
                self.deployment,
                {"spec": {"replicas": count}},
                namespace=self.namespace,
                patch_type=PatchType.MERGE,
            )
        )
        self._count = count
        log.info("scaled deployment %s/%s to %d", self.namespace, self.deployment, count)
        if wait and count > 0:
            await self.wait_ready(300.0)

    async def ready(self) -> int:
        """Ready replicas according to the Deployment's status."""
        deployment: Any = await self._call(
            self.client.get(Deployment, self.deployment, namespace=self.namespace)
        )
        status = deployment.status
        return int(status.readyReplicas or 0) if status is not None else 0

    async def wait_ready(self, timeout_s: float, poll_s: float = 1.0) -> int:
        """Wait until at least one replica is ready (or `timeout_s` passes); ready replicas."""
        deadline = time.monotonic() + timeout_s
        while True:
            ready = await self.ready()
            if ready > 0 or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(poll_s)

    async def _call(self, call: Any) -> Any:
        return await api_call(call, f"{self.namespace}/{self.deployment}")
