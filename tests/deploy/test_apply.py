"""`llmhost apply` and `llmhost status` against a stand-in API server that keeps objects the way
the real one does for server-side apply (create or update by path, dry runs not stored,
generation and status on Deployments and Jobs); never a cluster."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from llmhost.deploy.apply import Change, apply_objects, load_directory, wait_rollout
from llmhost.deploy.catalog import DeployError
from llmhost.deploy.kubernetes import render, write_kustomize
from llmhost.gateway.kube_api import api_client
from tests.deploy.cases import CASES
from tests.support.kube import kubeconfig_for

NOT_FOUND = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "reason": "NotFound",
    "code": 404,
    "message": "not found",
}


def reply(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )


class ApiServer:
    """Objects by URL path; PATCH (apply) creates or replaces, GET reads or lists."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.applies: list[tuple[str, str, dict[str, str]]] = []
        self.ready = True  # Deployments report their replicas ready

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path
        if request.method == "PATCH":
            body = yaml.safe_load(await request.text())
            self.applies.append((path, request.content_type, dict(request.query)))
            live = self.objects.get(path)
            result = copy.deepcopy(body)
            meta = result["metadata"]
            meta["uid"] = (live or {}).get("metadata", {}).get("uid", f"uid-{len(self.objects)}")
            generation = (live or {}).get("metadata", {}).get("generation", 0)
            changed = live is None or live.get("spec") != body.get("spec")
            meta["generation"] = generation + 1 if changed else generation
            if request.query.get("dryRun") != "All":
                self.objects[path] = result
            return reply(self._with_status(result))
        if path in self.objects:
            return reply(self._with_status(self.objects[path]))
        kind = path.rsplit("/", 1)[-1]
        if kind in ("deployments", "jobs", "leaderworkersets"):
            items = [
                self._with_status(o)
                for p, o in sorted(self.objects.items())
                if p.startswith(path + "/")
            ]
            return reply({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})
        return reply(NOT_FOUND, 404)

    def _with_status(self, item: dict[str, Any]) -> dict[str, Any]:
        item = copy.deepcopy(item)
        generation = item["metadata"].get("generation", 1)
        if item["kind"] == "Deployment":
            want = item["spec"].get("replicas", 1)
            ready = want if self.ready else 0
            item["status"] = {
                "observedGeneration": generation,
                "replicas": want,
                "updatedReplicas": want,
                "readyReplicas": ready,
            }
        if item["kind"] == "LeaderWorkerSet":
            want = item["spec"].get("replicas", 1)
            ready = want if self.ready else 0
            item["status"] = {"replicas": want, "readyReplicas": ready, "updatedReplicas": want}
        if item["kind"] == "Job":
            item["status"] = {"succeeded": 1}
        return item


def rendered(tmp_path: Path, **changes: Any) -> Path:
    case = CASES[2]
    out = tmp_path / "k8s"
    write_kustomize(render([case.plan], dataclasses.replace(case.options, **changes)), out)
    return out


def apply(url: str, directory: Path, dry_run: bool = False) -> list[Change]:
    async def run() -> list[Change]:
        client = api_client(None, url)
        try:
            return await apply_objects(client, load_directory(directory), dry_run, lambda c: None)
        finally:
            await client.close()

    return asyncio.run(run())


def test_apply_creates_in_order_then_finds_nothing_to_change(
    api: tuple[ApiServer, str], tmp_path: Path
) -> None:
    server, url = api
    directory = rendered(tmp_path)
    first = apply(url, directory)
    assert {c.action for c in first} == {"created"}
    assert first[0].target == "Namespace/llmhost"  # before anything that lives in it
    path, content_type, query = server.applies[0]
    assert path == "/api/v1/namespaces/llmhost"
    assert content_type == "application/apply-patch+yaml"
    assert query == {"fieldManager": "llmhost-apply", "force": "true"}
    assert "/apis/monitoring.coreos.com/v1/namespaces/llmhost/prometheusrules/llmhost" in (
        server.objects
    )  # custom resources too
    assert {c.action for c in apply(url, directory)} == {"unchanged"}


def test_dry_run_prints_the_diff_and_changes_nothing(
    api: tuple[ApiServer, str], tmp_path: Path
) -> None:
    server, url = api
    apply(url, rendered(tmp_path))
    stored = copy.deepcopy(server.objects)
    changes = apply(url, rendered(tmp_path, gateway_replicas=3), dry_run=True)
    changed = [c for c in changes if c.action == "configured"]
    assert [c.target for c in changed] == [
        "Deployment/llmhost/llmhost-gateway",
        "HorizontalPodAutoscaler/llmhost/llmhost-gateway",
    ]
    assert "-  replicas: 2\n+  replicas: 3\n" in changed[0].diff
    assert server.objects == stored
    assert all(q.get("dryRun") == "All" for _, _, q in server.applies[-len(changes) :])


def test_rollout_waits_until_deployments_are_ready(
    api: tuple[ApiServer, str], tmp_path: Path
) -> None:
    server, url = api
    apply(url, rendered(tmp_path))
    server.ready = False

    async def follow(timeout: float) -> list[Any]:
        client = api_client(None, url)
        try:
            return await wait_rollout(client, "llmhost", timeout, lambda s: None, poll_s=0.05)
        finally:
            await client.close()

    states = asyncio.run(follow(0.2))
    assert not all(s.done for s in states)  # timed out, and says which
    server.ready = True
    states = asyncio.run(follow(5))
    assert all(s.done for s in states)
    assert {s.target for s in states} >= {
        "Deployment/llmhost/llmhost-gateway",
        "Deployment/llmhost/engine-gemma-3-270m",
        "Job/llmhost/download-gemma-3-270m-main",
    }


def test_cli_dry_run_and_status_with_a_kubeconfig(
    api: tuple[ApiServer, str], tmp_path: Path
) -> None:
    _, url = api
    directory = rendered(tmp_path)
    kubeconfig = kubeconfig_for(url, tmp_path)
    env = {"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}
    run = [sys.executable, "-m", "llmhost"]
    done = subprocess.run(
        [*run, "apply", str(directory), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Namespace/llmhost created (dry run)" in done.stdout
    assert "+++ rendered/Deployment/llmhost/llmhost-gateway" in done.stdout
    done = subprocess.run(
        [*run, "apply", str(directory), "--timeout", "30"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Deployment/llmhost/llmhost-gateway: 2/2 done" in done.stdout
    done = subprocess.run([*run, "status"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "engine-gemma-3-270m" in done.stdout


def test_a_directory_that_was_not_rendered_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"no kustomization\.yaml"):
        load_directory(tmp_path)


def test_rollout_follows_leader_worker_sets(api: tuple[ApiServer, str], tmp_path: Path) -> None:
    server, url = api
    case = CASES[3]
    out = tmp_path / "multi"
    write_kustomize(render([case.plan], case.options), out)
    apply(url, out)
    assert (
        "/apis/leaderworkerset.x-k8s.io/v1/namespaces/llmhost/leaderworkersets/engine-llama-3-1-405b"
        in server.objects
    )
    server.ready = False

    async def follow(timeout: float) -> list[Any]:
        client = api_client(None, url)
        try:
            return await wait_rollout(client, "llmhost", timeout, lambda s: None, poll_s=0.05)
        finally:
            await client.close()

    states = {s.target: s for s in asyncio.run(follow(0.1))}
    group = states["LeaderWorkerSet/llmhost/engine-llama-3-1-405b"]
    assert not group.done and group.desired == 2  # production: N+1 groups
    server.ready = True
    states = {s.target: s for s in asyncio.run(follow(5))}
    assert states["LeaderWorkerSet/llmhost/engine-llama-3-1-405b"].done
