"""The Kubernetes scaler against a stand-in API server replaying recorded response shapes
(Scale, Deployment and Status objects as the API server returns them), never a cluster."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop
from aiohttp import web

from llmhost.engines.supervisor import free_port
from llmhost.gateway.kubernetes_scaler import KubernetesError, KubernetesScaler

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


class ApiServer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, Any]] = []
        self.tokens: list[str] = []
        self.replicas = 1
        self.ready_after = 2  # the Deployment reports a ready replica from the 2nd status read

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
    runner = web.AppRunner(server.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


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
