"""A cluster model end to end, without a cluster: the gateway finds replicas through a stand-in
Kubernetes API (EndpointSlices of the engine's Service) and scales the engine Deployment through
its scale subresource, in front of stand-in engines on loopback addresses. The API stand-in
answers the way the real one does for the calls the gateway makes; the engines are stand-ins
because what is under test is the gateway's discovery, routing and scale-from-zero."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import uvloop
import yaml
from aiohttp import web

from llmhost.config import ClusterSource, ModelConfig
from llmhost.engines.supervisor import free_port
from tests.support.harness import gateway, serving
from tests.support.standin import StandIn

SLICES = "/apis/discovery.k8s.io/v1/namespaces/llm/endpointslices"
SCALE = "/apis/apps/v1/namespaces/llm/deployments/engine-gemma/scale"


class Cluster:
    """The API calls the gateway makes: list EndpointSlices, get and patch the scale."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.replicas = 0
        self.pods: dict[str, str] = {}  # pod name -> address
        self.terminating: set[str] = set()
        self.patches: list[int] = []
        self.start_pod: str | None = None  # a pod that becomes ready when scaled up

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == SLICES:
            assert request.query["labelSelector"] == "kubernetes.io/service-name=engine-gemma"
            endpoints = [
                {
                    "addresses": [address],
                    "targetRef": {"kind": "Pod", "name": pod},
                    "conditions": {
                        "ready": pod not in self.terminating,
                        "terminating": pod in self.terminating,
                    },
                }
                for pod, address in sorted(self.pods.items())
            ]
            return _json(
                {
                    "kind": "EndpointSliceList",
                    "apiVersion": "discovery.k8s.io/v1",
                    "metadata": {},
                    "items": [
                        {
                            "metadata": {"name": "engine-gemma-abc", "namespace": "llm"},
                            "addressType": "IPv4",
                            "endpoints": endpoints,
                            "ports": [{"name": "http", "port": self.port}],
                        }
                    ],
                }
            )
        if request.path == SCALE:
            if request.method == "PATCH":
                self.replicas = json.loads(await request.read())["spec"]["replicas"]
                self.patches.append(self.replicas)
                if self.replicas and self.start_pod:
                    asyncio.get_running_loop().call_later(0.5, self._pod_ready)
            return _json(
                {
                    "kind": "Scale",
                    "apiVersion": "autoscaling/v1",
                    "metadata": {"name": "engine-gemma", "namespace": "llm"},
                    "spec": {"replicas": self.replicas},
                }
            )
        return _json({"kind": "Status", "code": 404, "reason": "NotFound"}, 404)

    def _pod_ready(self) -> None:
        assert self.start_pod is not None
        self.pods[self.start_pod] = "127.0.0.4"


def _json(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Cluster, dict[str, StandIn]]]:
    """The API stand-in (via KUBECONFIG) and engines on 127.0.0.2-4, all on one port."""
    engine_port, api_port = free_port(), free_port()
    state = Cluster(engine_port)
    api = web.Application()
    api.router.add_route("*", "/{path:.*}", state.handle)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{api_port}"}}],
                "users": [{"name": "u", "user": {"token": "sa-token"}}],
                "contexts": [
                    {"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "llm"}}
                ],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    engines = {f"127.0.0.{i}": StandIn() for i in (2, 3, 4)}
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(serving(api, "127.0.0.1", api_port))
        for address, engine in engines.items():
            await stack.enter_async_context(serving(engine.app(), address, engine_port))
        yield state, engines


def model(port: int, **settings: Any) -> ModelConfig:
    source = ClusterSource(deployment="engine-gemma", port=port, poll_s=0.1)
    return ModelConfig(name="gemma", engine="vllm", kubernetes=source, **settings)


async def ask(url: str) -> str:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    try:
        reply = await client.chat.completions.create(
            model="gemma", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        return reply.choices[0].message.content or ""
    finally:
        await client.close()


def test_replicas_follow_the_services_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with cluster(tmp_path, monkeypatch) as (state, engines):
            state.replicas = 1
            state.pods = {"engine-gemma-a": "127.0.0.2"}
            config = model(state.port, min_replicas=1, max_replicas=1)
            async with gateway([config]) as url:
                assert await ask(url) == "Hello from the stand-in."
                assert len(engines["127.0.0.2"].requests) == 1
                # A rollout: the old pod terminates, a new one is ready elsewhere.
                state.terminating = {"engine-gemma-a"}
                state.pods["engine-gemma-b"] = "127.0.0.3"
                await asyncio.sleep(0.5)
                for _ in range(3):
                    await ask(url)
                assert len(engines["127.0.0.2"].requests) == 1
                assert len(engines["127.0.0.3"].requests) == 3

    uvloop.run(scenario())


def test_a_request_at_zero_scales_the_deployment_and_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with cluster(tmp_path, monkeypatch) as (state, engines):
            state.start_pod = "engine-gemma-c"  # ready half a second after the patch
            config = model(state.port, min_replicas=0, max_replicas=2, idle_to_zero_s=600)
            async with gateway([config]) as url:
                assert state.patches == []  # at zero, nothing to do until a request comes
                assert await ask(url) == "Hello from the stand-in."
                assert state.patches == [1] and state.replicas == 1
                assert len(engines["127.0.0.4"].requests) == 1

    uvloop.run(scenario())


def test_with_an_outside_scaler_a_request_at_zero_waits_for_its_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEDA scales on the gateway's queue metric; the gateway only holds the request."""

    async def scenario() -> None:
        async with cluster(tmp_path, monkeypatch) as (state, engines):
            source = ClusterSource(
                deployment="engine-gemma", port=state.port, poll_s=0.1, scale=False
            )
            config = ModelConfig(
                name="gemma",
                engine="vllm",
                kubernetes=source,
                min_replicas=0,
                max_replicas=2,
                queue_wait_s=10,
            )
            async with gateway([config]) as url:
                asyncio.get_running_loop().call_later(
                    0.5, state.pods.__setitem__, "engine-gemma-d", "127.0.0.3"
                )
                assert await ask(url) == "Hello from the stand-in."
                assert state.patches == []  # the gateway left the replica count alone
                assert len(engines["127.0.0.3"].requests) == 1

    uvloop.run(scenario())


POOL = "/apis/inference.networking.k8s.io/v1/namespaces/llm/inferencepools/engine-gemma"
PODS = "/api/v1/namespaces/llm/pods"


def test_replicas_follow_an_inference_pool_s_ready_pods() -> None:
    """The gateway finds replicas through a Gateway API InferencePool: its selector names the
    pods, its target port the port; only running, ready pods not being deleted serve."""
    from llmhost.engines.openai_compat import OpenAICompatAdapter
    from llmhost.engines.replicas import ReplicaSet
    from llmhost.gateway.discovery import PoolDiscovery
    from llmhost.gateway.kube_api import api_client

    def pod(name: str, ip: str, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": "llm"}
        if deleting:
            meta["deletionTimestamp"] = "2026-12-01T00:00:00Z"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }

    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        if request.path == POOL:
            return _json(
                {
                    "apiVersion": "inference.networking.k8s.io/v1",
                    "kind": "InferencePool",
                    "metadata": {"name": "engine-gemma", "namespace": "llm"},
                    "spec": {
                        "selector": {"matchLabels": {"app.kubernetes.io/instance": "gemma"}},
                        "targetPorts": [{"number": 8123}],
                    },
                }
            )
        if request.path == PODS:
            seen.append(request.query["labelSelector"])
            items = [
                pod("a", "10.1.0.1"),
                pod("b", "10.1.0.2", ready=False),
                pod("c", "10.1.0.3", deleting=True),
            ]
            return _json({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
        return _json({"kind": "Status", "code": 404, "reason": "NotFound"}, 404)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handle)
        async with serving(app) as url:
            client = api_client("llm", url)
            replicas = ReplicaSet("gemma", OpenAICompatAdapter())
            try:
                await PoolDiscovery(replicas, client, "engine-gemma", 8000).sync()
            finally:
                await client.close()
        assert [(r.id, r.url) for r in replicas.replicas] == [("a", "http://10.1.0.1:8123")]
        assert seen == ["app.kubernetes.io/instance=gemma"]

    uvloop.run(scenario())
