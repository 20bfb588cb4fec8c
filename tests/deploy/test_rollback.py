"""`llmhost rollback` against a stand-in API server holding what the Deployment controller leaves
after a model update: the engine Deployment on revision 2 (weights r2) and its ReplicaSets for
revisions 1 (weights main) and 2. The stand-in applies JSON patches the way the API server
does for the two operations rollback sends; never a cluster."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llmhost.deploy.kubernetes import render
from tests.deploy.cases import CASES
from tests.support.harness import served_in_thread
from tests.support.kube import kubeconfig_for
from tests.support.processes import run_llmhost

NS = "/apis/apps/v1/namespaces/llmhost"


def reply(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )


def engine_deployment(weights: str | None) -> dict[str, Any]:
    case = CASES[0]
    options = dataclasses.replace(case.options, weights=weights or case.options.weights)
    objects = render([case.plan], options)
    dep: dict[str, Any] = next(
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("engine")
    )
    return dep


class Controller:
    """The Deployment and the ReplicaSets the controller made for its two revisions."""

    def __init__(self) -> None:
        old = engine_deployment(None)
        new = engine_deployment("gaunernst/gemma-3-12b-it-int4-awq@r2")
        self.deployment = copy.deepcopy(new)
        self.deployment["metadata"].update(
            uid="dep-uid",
            annotations={
                **new["metadata"]["annotations"],
                "deployment.kubernetes.io/revision": "2",
            },
        )
        self.old_template = old["spec"]["template"]
        self.replica_sets = [self._rs(old, 1, "aaaa"), self._rs(new, 2, "bbbb")]
        self.patches: list[tuple[str, list[dict[str, Any]]]] = []

    def _rs(self, dep: dict[str, Any], revision: int, hash_: str) -> dict[str, Any]:
        template = copy.deepcopy(dep["spec"]["template"])
        template["metadata"]["labels"]["pod-template-hash"] = hash_
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"engine-gemma-3-12b-{hash_}",
                "namespace": "llmhost",
                "annotations": {
                    "deployment.kubernetes.io/revision": str(revision),
                    **dep["metadata"]["annotations"],
                },
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "engine-gemma-3-12b",
                        "uid": "dep-uid",
                        "controller": True,
                    }
                ],
            },
            "spec": {"selector": dep["spec"]["selector"], "template": template},
        }

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == f"{NS}/deployments" and request.method == "GET":
            selector = request.query.get("labelSelector", "")
            labels = self.deployment["metadata"]["labels"]
            wanted = dict(p.split("=", 1) for p in selector.split(",") if p)
            items = [self.deployment] if wanted.items() <= labels.items() else []
            return reply(
                {"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": items}
            )
        if request.path == f"{NS}/replicasets":
            return reply(
                {
                    "kind": "ReplicaSetList",
                    "apiVersion": "apps/v1",
                    "metadata": {},
                    "items": self.replica_sets,
                }
            )
        if request.path == f"{NS}/deployments/engine-gemma-3-12b" and request.method == "PATCH":
            assert request.content_type == "application/json-patch+json"
            ops = await request.json()
            self.patches.append((request.path, ops))
            for op in ops:
                if op["path"] == "/spec/template":
                    self.deployment["spec"]["template"] = op["value"]
                else:
                    key = op["path"].rsplit("/", 1)[1].replace("~1", "/")
                    self.deployment["metadata"]["annotations"][key] = op["value"]
            return reply(self.deployment)
        return reply(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
                "message": "not found",
            },
            404,
        )


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[Controller, dict[str, str]]]:
    state = Controller()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", state.handle)
    with served_in_thread(app) as url:
        kubeconfig = kubeconfig_for(url, tmp_path)
        yield state, {"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}


def test_rollback_returns_to_the_previous_revision(
    controller: tuple[Controller, dict[str, str]],
) -> None:
    state, env = controller
    marker = state.deployment["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
    assert "/r2/.llmhost-complete" in marker
    done = run_llmhost(["rollback", "--model", "gemma-3-12b"], env)
    assert done.returncode == 0, done.stderr
    assert "Deployment/llmhost/engine-gemma-3-12b: revision 2 -> 1 (weights main)" in done.stdout
    # The previous template, without the controller's own label, and the weights it serves.
    assert state.deployment["spec"]["template"] == state.old_template
    assert state.deployment["metadata"]["annotations"]["llmhost.dev/weights-revision"] == "main"


def test_rollback_of_an_unknown_model_is_a_clear_error(
    controller: tuple[Controller, dict[str, str]],
) -> None:
    state, env = controller
    done = run_llmhost(["rollback", "--model", "llama-3.1-8b"], env)
    assert done.returncode != 0 and "no engine Deployment for model 'llama-3.1-8b'" in done.stderr
    assert "Traceback" not in done.stderr and not state.patches
