"""One autoscaler at a time: two gateways' electors against a stand-in Kubernetes API server that
keeps a Lease the way the real one does (get, create, replace; every write must carry the
resourceVersion it read, else 409 Conflict), and their autoscalers on a shared demand board.
Never a cluster."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from llmhost.config import ModelConfig
from llmhost.engines import adapter
from llmhost.engines.replicas import ReplicaSet
from llmhost.gateway.kube_api import api_client
from llmhost.gateway.leader import Coordination, LeaseElector, MemoryBoard
from llmhost.gateway.metrics import GatewayMetrics
from llmhost.gateway.routes import Route
from llmhost.gateway.scaling import Autoscaler
from tests.support.harness import serving

LEASES = "/apis/coordination.k8s.io/v1/namespaces/llm/leases"


def _json(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )


def _status(code: int, reason: str, message: str) -> web.Response:
    return _json(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        code,
    )


class LeaseApi:
    """Leases by name, with the API server's optimistic concurrency."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 100
        self.writes: list[tuple[str, str]] = []  # (verb, holderIdentity) of each accepted write
        self.conflicts = 0

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        body["metadata"].setdefault("uid", "lease-uid")
        self.leases[body["metadata"]["name"]] = body
        return body

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "POST" and request.path == LEASES:
            body = await request.json()
            name = body["metadata"]["name"]
            if name in self.leases:
                self.conflicts += 1
                return _status(409, "AlreadyExists", f'leases "{name}" already exists')
            self.writes.append(("create", body["spec"].get("holderIdentity")))
            return _json(self._store(body), 201)
        name = request.path.removeprefix(LEASES + "/")
        if request.method == "GET":
            if name not in self.leases:
                return _status(404, "NotFound", f'leases "{name}" not found')
            return _json(self.leases[name])
        if request.method == "PUT":
            body = await request.json()
            live = self.leases.get(name)
            if live is None:
                return _status(404, "NotFound", f'leases "{name}" not found')
            if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
                self.conflicts += 1
                return _status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply "
                    "your changes to the latest version and try again",
                )
            self.writes.append(("replace", body["spec"].get("holderIdentity")))
            return _json(self._store(body))
        return _status(405, "MethodNotAllowed", request.method)


@asynccontextmanager
async def lease_api() -> AsyncIterator[tuple[LeaseApi, str]]:
    api = LeaseApi()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", api.handle)
    async with serving(app) as url:
        yield api, url


def holder(api: LeaseApi) -> str | None:
    holder_id: str | None = api.leases["llmhost-scaler"]["spec"].get("holderIdentity")
    return holder_id


def test_two_electors_one_leader_and_a_takeover() -> None:
    asyncio.run(_two_electors_one_leader_and_a_takeover())


async def _two_electors_one_leader_and_a_takeover() -> None:
    async with lease_api() as (api, url):
        clients = [api_client("llm", url), api_client("llm", url)]
        a, b = (
            LeaseElector(c, "llmhost-scaler", who, "llm", lease_s=1)
            for c, who in zip(clients, ("gateway-a", "gateway-b"), strict=True)
        )
        try:
            # Both find no Lease and create it at once: the API server lets one win.
            results = await asyncio.gather(a.step(), b.step())
            assert sorted(results) == [False, True] and api.conflicts == 1
            leader, follower = (a, b) if a.leading else (b, a)
            for _ in range(3):
                await asyncio.gather(leader.step(), follower.step())
                assert leader.leading and not follower.leading
            assert {who for _, who in api.writes} == {leader.identity}  # one writer
            # The leader is lost (its pod died): it renews no more. Within the lease duration
            # plus a renewal, the follower holds the Lease.
            lost = time.monotonic()
            while not await follower.step():
                assert time.monotonic() - lost < 3, "no takeover within 3 s"
                await asyncio.sleep(0.1)
            assert holder(api) == follower.identity
            assert api.leases["llmhost-scaler"]["spec"]["leaseTransitions"] == 1
            # The old leader has stepped down by its own clock before anyone took over.
            assert not leader.leading
            assert not await leader.step()
        finally:
            await asyncio.gather(*(c.close() for c in clients))


def test_a_stale_write_is_refused_and_loses_the_lease() -> None:
    asyncio.run(_a_stale_write_is_refused_and_loses_the_lease())


async def _a_stale_write_is_refused_and_loses_the_lease() -> None:
    async with lease_api() as (api, url):
        client = api_client("llm", url)
        elector = LeaseElector(client, "llmhost-scaler", "gateway-a", "llm", lease_s=10)
        try:
            assert await elector.step()
            # Someone else took the Lease meanwhile (a newer resourceVersion, another holder).
            lease = api.leases["llmhost-scaler"]
            lease["spec"]["holderIdentity"] = "gateway-b"
            api._store(lease)
            assert not await elector.step()
            assert holder(api) == "gateway-b"
        finally:
            await client.close()


class RecordingScaler:
    """Where replica counts are written; shared by both gateways, as a Deployment is."""

    def __init__(self, writes: list[tuple[str, int]], who: str) -> None:
        self.writes = writes
        self.who = who
        self._count = 1

    @property
    def count(self) -> int:
        return self._count

    async def scale(self, count: int, wait: bool = True) -> None:
        self.writes.append((self.who, count))
        self._count = count


def autoscaler(who: str, writes: list[tuple[str, int]], metrics: GatewayMetrics) -> Autoscaler:
    config = ModelConfig(
        name="gemma",
        engine="vllm",
        urls=("http://127.0.0.1:1",),
        parallel=4,
        min_replicas=1,
        max_replicas=8,
        scale_up_delay_s=0,
    )
    route = Route(config, ReplicaSet("gemma", adapter("vllm")), metrics.for_model("gemma"))
    return Autoscaler(route, RecordingScaler(writes, who), config, metrics)


def test_only_the_leader_scales_and_on_every_gateways_queue() -> None:
    asyncio.run(_only_the_leader_scales_and_on_every_gateways_queue())


async def _only_the_leader_scales_and_on_every_gateways_queue() -> None:
    async with lease_api() as (api, url):
        clients = [api_client("llm", url), api_client("llm", url)]
        board = MemoryBoard()
        writes: list[tuple[str, int]] = []
        gateways = []
        for client, who in zip(clients, ("gateway-a", "gateway-b"), strict=True):
            scaler = autoscaler(who, writes, GatewayMetrics())
            scaler.coordination = Coordination(
                LeaseElector(client, "llmhost-scaler", who, "llm", lease_s=5), board
            )
            gateways.append(scaler)
        a, b = gateways
        try:
            assert a.coordination is not None and b.coordination is not None
            await a.coordination.step()  # a leads
            await b.coordination.step()
            assert a.coordination.leading and not b.coordination.leading
            # 12 requests wait at the follower, 4 at the leader: 16 / 4 per replica = 4.
            b.route.queued = 12
            a.route.queued = 4
            for _ in range(2):  # follower publishes its demand; the leader reads it
                await b.step(now=100.0)
                await b.coordination.step()
                await a.coordination.step()
            await a.step(now=101.0)
            assert writes == [("gateway-a", 4)]  # one writer, on the sum
            b.wake()  # a follower woken by a request still writes nothing
            await asyncio.sleep(0)
            assert writes == [("gateway-a", 4)]
            # Taking the lead re-reads the replica count the old leader set.
            refreshed: list[str] = []

            async def refresh() -> None:
                refreshed.append("b")

            b.coordination.on_lead.append(refresh)
            lease = api.leases["llmhost-scaler"]["spec"]
            lease["leaseDurationSeconds"] = 0  # a's lease lapses at once
            await b.coordination.step()
            assert b.coordination.leading and refreshed == ["b"]
        finally:
            await asyncio.gather(*(c.close() for c in clients))


@pytest.mark.parametrize("lease_s", [1])
def test_memory_board_forgets_a_gateway_that_stops_publishing(lease_s: int) -> None:
    now = [0.0]
    board = MemoryBoard(clock=lambda: now[0])
    asyncio.run(board.publish("gateway-b", {"gemma": 7.0}, ttl_s=lease_s))
    assert asyncio.run(board.others("gateway-a")) == {"gemma": 7.0}
    assert asyncio.run(board.others("gateway-b")) == {}
    now[0] = 2.0
    assert asyncio.run(board.others("gateway-a")) == {}
