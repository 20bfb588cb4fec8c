"""The Kubernetes scaler and endpoint discovery against a stand-in API server replaying recorded
response shapes (Scale, Deployment, EndpointSliceList and Status objects as the API server
returns them), never a cluster."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop
from aiohttp import web

from llmhost.engines import adapter
from llmhost.engines.replicas import ReplicaSet, ReplicaState
from llmhost.gateway.discovery import EndpointDiscovery
from llmhost.gateway.kube_api import api_client
from llmhost.gateway.kubernetes_scaler import KubernetesError, KubernetesScaler
from tests.support.harness import serving

BASE = "/apis/apps/v1/namespaces/llm/deployments/gemma"
FORBIDDEN = {
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
    "message": 'deployments.apps "gemma" is forbidden: User "system:serviceaccount:llm:llmhost" '
               'cannot patch resource "deployments/scale" in API group "apps" in the namespace '
               '"other"',
    "reason": "Forbidden", "details": {"name": "gemma", "group": "apps", "kind": "deployments"},
    "code": 403,
}  # fmt: skip


def reply(value: dict[str, Any], status: int = 200) -> web.Response:
    # The API server's exact content type (lightkube decodes Status objects only with it).
    return web.Response(status=status, body=json.dumps(value).encode(),
                        headers={"Content-Type": "application/json"})  # fmt: skip


def scale_object(replicas: int) -> dict[str, Any]:
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "gemma", "namespace": "llm", "resourceVersion": "4242"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": "app.kubernetes.io/name=gemma"},
    }  # fmt: skip


def deployment_object(ready: int) -> dict[str, Any]:
    return {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "gemma", "namespace": "llm", "generation": 3},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gemma"}},
                     "template": {"metadata": {"labels": {"app": "gemma"}},
                                  "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}},
            "status": {"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1,
                       **({"readyReplicas": ready, "availableReplicas": ready}
                          if ready else {})}}  # fmt: skip


SLICES = "/apis/discovery.k8s.io/v1/namespaces/llm/endpointslices"


def endpoint(pod: str, address: str, ready: bool | None = True, terminating: bool = False
             ) -> dict[str, Any]:  # fmt: skip
    conditions = {"serving": True, "terminating": terminating}
    if ready is not None:
        conditions["ready"] = ready
    return {
        "addresses": [address],
        "conditions": conditions,
        "nodeName": "gpu-node-1",
        "targetRef": {"kind": "Pod", "namespace": "llm", "name": pod, "uid": "u-" + pod},
    }


def slice_list(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"resourceVersion": "981"},
            "items": [{"metadata": {"name": "gemma-x7k2p", "namespace": "llm",
                                    "labels": {"kubernetes.io/service-name": "gemma",
                                               "endpointslice.kubernetes.io/managed-by":
                                               "endpointslice-controller.k8s.io"}},
                       "addressType": "IPv4",
                       "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
                       "endpoints": list(endpoints)}]}  # fmt: skip


class ApiServer:
    def __init__(self) -> None:
        self.endpoints: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str, str, Any]] = []
        self.tokens: list[str] = []
        self.replicas = 1
        self.ready_after = 2  # the Deployment reports a ready replica from the 2nd status read
        self.selectors: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"null")
        self.calls.append((request.method, request.path, request.content_type, body))
        self.tokens.append(request.headers.get("Authorization", ""))
        if "/namespaces/other/" in request.path:
            return reply(FORBIDDEN, 403)
        if request.path == SLICES and request.method == "GET":
            self.selectors.append(request.query.get("labelSelector", ""))
            return reply(slice_list(*self.endpoints))
        if request.path == BASE + "/scale" and request.method == "GET":
            return reply(scale_object(self.replicas))
        if request.path == BASE + "/scale" and request.method == "PATCH":
            self.replicas = body["spec"]["replicas"]
            return reply(scale_object(self.replicas))
        if request.path == BASE and request.method == "GET":
            reads = sum(1 for m, p, _, _ in self.calls if m == "GET" and p == BASE)
            return reply(deployment_object(1 if reads >= self.ready_after else 0))
        return reply({"kind": "Status", "code": 404, "reason": "NotFound",
                      "message": "not found", "status": "Failure"}, 404)  # fmt: skip


@asynccontextmanager
async def api() -> AsyncIterator[tuple[ApiServer, str]]:
    server = ApiServer()
    async with serving(server.app()) as url:
        yield server, url


def test_scale_patches_the_scale_subresource_and_waits_for_readiness() -> None:
    async def scenario() -> None:
        async with api() as (server, url):
            scaler = KubernetesScaler("gemma", "llm", server=url, token="sa-token")
            assert await scaler.refresh() == 1 and scaler.count == 1
            assert server.tokens[0] == "Bearer sa-token"
            await scaler.scale(3, wait=False)
            assert scaler.count == 3 and server.replicas == 3
            method, path, content_type, body = server.calls[-1]
            assert (method, path) == ("PATCH", BASE + "/scale")
            assert content_type == "application/merge-patch+json"
            assert body == {"spec": {"replicas": 3}}
            assert await scaler.wait_ready(5, poll_s=0.01) == 1
            await scaler.scale(0, wait=False)
            assert server.replicas == 0

    uvloop.run(scenario())


def test_rbac_refusal_is_a_clear_error() -> None:
    async def scenario() -> None:
        async with api() as (_, url):
            scaler = KubernetesScaler("gemma", "other", server=url)
            with pytest.raises(KubernetesError, match=r"403 Forbidden: .*cannot patch"):
                await scaler.scale(2, wait=False)
            assert scaler.count == 0

    uvloop.run(scenario())


def test_discovery_follows_ready_endpoints_of_the_service() -> None:
    async def scenario() -> None:
        async with api() as (server, url):
            replicas = ReplicaSet("gemma", adapter("vllm"))
            discovery = EndpointDiscovery(replicas, api_client("llm", url), "gemma", 8000)
            server.endpoints = [
                endpoint("gemma-a", "10.4.0.7"),
                endpoint("gemma-b", "10.4.1.9", ready=None),  # unset means ready
                endpoint("gemma-c", "10.4.2.3", ready=False),  # still loading weights
                endpoint("gemma-d", "fd00::12"),
            ]
            await discovery.sync()
            assert server.selectors[-1] == "kubernetes.io/service-name=gemma"
            assert {r.id: r.url for r in replicas.replicas} == {
                "gemma-a": "http://10.4.0.7:8000",
                "gemma-b": "http://10.4.1.9:8000",
                "gemma-d": "http://[fd00::12]:8000",
            }
            assert all(r.state is ReplicaState.READY for r in replicas.replicas)
            leaving = next(r for r in replicas.replicas if r.id == "gemma-a")
            server.endpoints = [
                endpoint("gemma-a", "10.4.0.7", terminating=True),  # scaled down: draining
                endpoint("gemma-b", "10.4.1.9"),
                endpoint("gemma-c", "10.4.2.3"),  # now loaded
            ]
            await discovery.sync()
            assert sorted(r.id for r in replicas.replicas) == ["gemma-b", "gemma-c"]
            assert leaving.state is ReplicaState.DOWN

    uvloop.run(scenario())


def test_discovery_keeps_replicas_when_the_api_fails() -> None:
    async def scenario() -> None:
        async with api() as (server, url):
            replicas = ReplicaSet("gemma", adapter("vllm"))
            server.endpoints = [endpoint("gemma-a", "10.4.0.7")]
            await EndpointDiscovery(replicas, api_client("llm", url), "gemma", 8000).sync()
            refused = EndpointDiscovery(replicas, api_client("other", url), "gemma", 8000)
            with pytest.raises(KubernetesError, match="endpointslices of gemma"):
                await refused.sync()
            assert [r.id for r in replicas.replicas] == ["gemma-a"]

    uvloop.run(scenario())
