"""`llmhost apply --check` / `llmhost doctor --cluster` against a stand-in API server that answers
/version, CustomResourceDefinitions, Nodes and StorageClasses in the API server's shapes; never
a cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llmhost.deploy.kubernetes import render, write_kustomize
from tests.deploy.cases import CASES
from tests.support.harness import served_in_thread
from tests.support.kube import kubeconfig_for
from tests.support.processes import run_llmhost

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"


def reply(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(value).encode(), headers={"Content-Type": "application/json"}
    )


class Cluster:
    def __init__(self) -> None:
        self.version = "v1.31.2"
        self.crds = {
            "servicemonitors.monitoring.coreos.com",
            "podmonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
            "leaderworkersets.leaderworkerset.x-k8s.io",
            "certificates.cert-manager.io",
        }
        self.gpus = 8
        self.default_class = True
        self.writes = 0

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            self.writes += 1
            return reply({"kind": "Status", "code": 405}, 405)
        if request.path == "/version":
            return reply({"major": "1", "minor": "31", "gitVersion": self.version})
        if request.path.startswith(CRDS):
            name = request.path.removeprefix(CRDS)
            if name in self.crds:
                plural, group = name.split(".", 1)
                spec = {
                    "group": group,
                    "names": {"plural": plural, "kind": plural.capitalize()},
                    "scope": "Namespaced",
                    "versions": [{"name": "v1", "served": True, "storage": True}],
                }
                return reply(
                    {
                        "apiVersion": "apiextensions.k8s.io/v1",
                        "kind": "CustomResourceDefinition",
                        "metadata": {"name": name},
                        "spec": spec,
                    }
                )
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
        if request.path == "/api/v1/nodes":
            node = {
                "metadata": {"name": "gpu-node-1"},
                "status": {"allocatable": {"cpu": "200", "nvidia.com/gpu": str(self.gpus)}},
            }
            return reply({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": [node]})
        if request.path == "/apis/storage.k8s.io/v1/storageclasses":
            annotations = {"storageclass.kubernetes.io/is-default-class": "true"}
            item = {
                "metadata": {
                    "name": "standard-rwx",
                    "annotations": annotations if self.default_class else {},
                },
                "provisioner": "filestore.csi.storage.gke.io",
            }
            return reply(
                {
                    "kind": "StorageClassList",
                    "apiVersion": "storage.k8s.io/v1",
                    "metadata": {},
                    "items": [item],
                }
            )
        return reply({"kind": "Status", "code": 404, "reason": "NotFound"}, 404)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, str]]]:
    state = Cluster()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", state.handle)
    with served_in_thread(app) as url:
        kubeconfig = kubeconfig_for(url, tmp_path)
        yield state, {"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"}


def test_check_passes_when_everything_is_there(
    cluster: tuple[Cluster, dict[str, str]], tmp_path: Path
) -> None:
    state, env = cluster
    case = CASES[3]  # multi-node, TLS, monitoring, GPUs
    write_kustomize(render([case.plan], case.options), tmp_path / "k8s")
    done = run_llmhost(["apply", str(tmp_path / "k8s"), "--check"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok       API server: Kubernetes v1.31.2" in done.stdout
    assert "ok       CRD leaderworkersets.leaderworkerset.x-k8s.io" in done.stdout
    assert "ok       GPU nodes: 8 allocatable nvidia.com/gpu" in done.stdout
    assert state.writes == 0  # a check writes nothing


def test_each_missing_prerequisite_is_named_with_its_install(
    cluster: tuple[Cluster, dict[str, str]], tmp_path: Path
) -> None:
    state, env = cluster
    state.version, state.gpus, state.default_class = "v1.29.4", 0, False
    state.crds.discard("leaderworkersets.leaderworkerset.x-k8s.io")
    case = CASES[3]
    write_kustomize(render([case.plan], case.options), tmp_path / "k8s")
    done = run_llmhost(["doctor", "--cluster", str(tmp_path / "k8s")], env)
    assert done.returncode == 1
    out = done.stdout
    assert "MISSING  API server: Kubernetes v1.29.4" in out and "1.30 or newer" in out
    assert "MISSING  CRD leaderworkersets.leaderworkerset.x-k8s.io" in out
    assert "kubernetes-sigs/lws/releases" in out
    assert "MISSING  GPU nodes" in out and "gpu-operator" in out
    assert "MISSING  weights storage: no default StorageClass" in out
    assert "4 prerequisite(s) missing" in done.stderr
    assert state.writes == 0


def test_doctor_without_cluster_checks_this_machine() -> None:
    done = run_llmhost(["doctor"], {"PATH": "/usr/bin:/bin"})
    assert (
        done.returncode in (0, 1) and "python: " in done.stdout and "llama-server: " in done.stdout
    )
    assert "Traceback" not in done.stderr
