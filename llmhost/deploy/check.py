"""`llmhost apply --check` and `llmhost doctor --cluster`: what a rendered directory needs from
the cluster, looked up before anything is written. The API server's version, the CRDs of the
custom kinds it uses, a node offering GPUs (when engines ask for them) and the weights volume's
StorageClass; each missing piece named with how to install it (`data/prerequisites.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import yaml
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Node
from lightkube.resources.storage_v1 import StorageClass

from llmhost.deploy.apply import CUSTOM_KINDS
from llmhost.gateway.kube_api import KubernetesError, api_call

DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Finding:
    """One prerequisite: met or not, and what to do when not."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


@cache
def prerequisites() -> dict[str, Any]:
    """The shipped prerequisite data (read once)."""
    text = files("llmhost.deploy").joinpath("data/prerequisites.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _version(text: str) -> tuple[int, int]:
    major, minor = text.lstrip("v").split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


async def check_cluster(client: AsyncClient, objects: list[Any]) -> list[Finding]:
    """Every prerequisite of `objects` (as `load_directory` returns them), in a fixed order;
    an API server that refuses or fails a read is a `KubernetesError`."""
    findings: list[Finding] = await api_call(_check(client, objects), "cluster check")
    return findings


async def _check(client: AsyncClient, objects: list[Any]) -> list[Finding]:
    data = prerequisites()
    findings = [await _server_version(client, data["min_kubernetes"])]
    kinds = {(o.apiVersion.split("/")[0], o.kind) for o in objects}
    for group, version, kind, plural, _ in CUSTOM_KINDS:
        if (group, kind) not in kinds:
            continue
        name = f"{plural}.{group}"
        found = await _exists(client, CustomResourceDefinition, name)
        hint = data["crds"][group]
        findings.append(
            Finding(
                f"CRD {name}",
                found,
                f"{kind} {group}/{version}",
                "" if found else f"{hint['what']}: {hint['install']}",
            )
        )
    if any(_asks_for_gpus(o) for o in objects):
        findings.append(await _gpu_nodes(client, data["gpu"]))
    claims = [o for o in objects if o.kind == "PersistentVolumeClaim"]
    if claims:
        findings.append(await _storage(client, claims, data["storage"]))
    return findings


async def _server_version(client: AsyncClient, minimum: str) -> Finding:
    # lightkube has no call for /version; its HTTP client (already authenticated) does.
    http: Any = client._client._client
    try:
        response = await http.get("/version")
        response.raise_for_status()
        found = str(response.json()["gitVersion"])
    except Exception as exc:
        return Finding(
            "API server",
            False,
            f"cannot read /version: {exc}",
            "check the kubeconfig and that the cluster is reachable",
        )
    ok = _version(found) >= _version(minimum)
    return Finding(
        "API server",
        ok,
        f"Kubernetes {found}",
        "" if ok else f"upgrade the cluster to Kubernetes {minimum} or newer",
    )


async def _exists(client: AsyncClient, kind: Any, name: str) -> bool:
    try:
        await client.get(kind, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise KubernetesError(f"{name}: {exc.status.code} {exc.status.message}") from None
    return True


def _asks_for_gpus(item: Any) -> bool:
    text = yaml.safe_dump(item.to_dict() if hasattr(item, "to_dict") else item)
    return GPU_RESOURCE in text and item.kind in ("Deployment", "LeaderWorkerSet")


async def _gpu_nodes(client: AsyncClient, hint: dict[str, str]) -> Finding:
    gpus = 0
    async for node in client.list(Node):
        allocatable = (node.status.allocatable or {}) if node.status is not None else {}
        gpus += int(str(allocatable.get(GPU_RESOURCE, "0")) or 0)
    ok = gpus > 0
    return Finding(
        "GPU nodes",
        ok,
        f"{gpus} allocatable {GPU_RESOURCE}",
        "" if ok else f"{hint['what']}: {hint['install']}",
    )


async def _storage(client: AsyncClient, claims: list[Any], hint: dict[str, str]) -> Finding:
    classes: dict[str, Any] = {}
    async for item in client.list(StorageClass):
        if item.metadata is not None and item.metadata.name:
            classes[item.metadata.name] = item
    wanted = {c.spec.storageClassName for c in claims if c.spec.storageClassName}
    if wanted:
        missing = sorted(wanted - set(classes))
        ok = not missing
        detail = f"StorageClass {', '.join(sorted(wanted))}" + (
            f" (missing: {', '.join(missing)})" if missing else ""
        )
    else:
        defaults = [
            n
            for n, c in classes.items()
            if ((c.metadata and c.metadata.annotations) or {}).get(DEFAULT_CLASS) == "true"
        ]
        ok = bool(defaults)
        detail = f"default StorageClass {defaults[0]}" if ok else "no default StorageClass"
    return Finding(
        "weights storage", ok, detail, "" if ok else f"{hint['what']}: {hint['install']}"
    )
