"""`llmhost apply` and `llmhost status`: server-side apply of a rendered directory, rollout
progress, and a dry run that prints what would change.

Objects are applied in the order kustomization.yaml lists their files (namespace and RBAC
first), with field manager `llmhost-apply`; the gateway's scaler patches replicas as
`llmhost` and apply never sets engine replicas, so the two do not fight.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lightkube import AsyncClient, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job

from llmhost.deploy.catalog import DeployError
from llmhost.gateway.kube_api import api_call

FIELD_MANAGER = "llmhost-apply"
PART_OF = {"app.kubernetes.io/part-of": "llmhost"}
_VOLATILE = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp")
# The custom resources `llmhost render` writes: group, version, kind, plural, namespaced.
CUSTOM_KINDS = (
    ("monitoring.coreos.com", "v1", "ServiceMonitor", "servicemonitors", True),
    ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors", True),
    ("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules", True),
    ("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", True),
    ("karpenter.sh", "v1", "NodePool", "nodepools", False),
    ("leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets", True),
    ("cert-manager.io", "v1", "Certificate", "certificates", True),
    ("inference.networking.k8s.io", "v1", "InferencePool", "inferencepools", True),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", True),
)


def _register_custom_kinds() -> None:
    for group, version, kind, plural, namespaced in CUSTOM_KINDS:
        create = create_namespaced_resource if namespaced else create_global_resource
        create(group, version, kind, plural)


Transform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def load_directory(directory: Path, transform: Transform | None = None) -> list[Any]:
    """The objects of a rendered directory, in kustomization.yaml's order (`transform`, if
    given, changes the documents first: `apply --canary`)."""
    _register_custom_kinds()
    index = directory / "kustomization.yaml"
    try:
        files = yaml.safe_load(index.read_text())["resources"]
    except OSError:
        raise DeployError(
            f"{directory}: no kustomization.yaml; render it with `llmhost render`"
        ) from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise DeployError(f"{index}: not a kustomization with a resources list") from None
    documents: list[tuple[str, dict[str, Any]]] = []
    for name in files:
        try:
            text = (directory / name).read_text()
            documents += [(name, doc) for doc in yaml.safe_load_all(text) if doc]
        except OSError as exc:
            raise DeployError(f"{directory / name}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise DeployError(f"{directory / name}: {exc}") from None
    if transform is not None:
        documents = [("canary", doc) for doc in transform([doc for _, doc in documents])]
    objects: list[Any] = []
    for name, doc in documents:
        try:
            objects.append(codecs.from_dict(doc))
        except Exception as exc:  # lightkube's loader: unknown kinds, bad fields
            raise DeployError(f"{directory / name}: {exc}") from None
    return objects


def describe(item: Any) -> str:
    """kind/namespace/name of an object."""
    meta = item.metadata
    where = f"{meta.namespace}/" if meta.namespace else ""
    return f"{item.kind}/{where}{meta.name}"


@dataclass
class Change:
    """What applying one object did (or, in a dry run, would do)."""

    target: str
    action: str  # created, configured, unchanged
    diff: str = ""


def _clean(data: dict[str, Any] | None) -> str:
    if not data:
        return ""
    data = dict(data)
    data.pop("status", None)
    metadata = {k: v for k, v in data.get("metadata", {}).items() if k not in _VOLATILE}
    annotations = {
        k: v
        for k, v in metadata.get("annotations", {}).items()
        if k != "deployment.kubernetes.io/revision"
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    data["metadata"] = metadata
    return yaml.safe_dump(data, sort_keys=True)


async def _live(client: AsyncClient, item: Any) -> Any | None:
    try:
        return await client.get(type(item), item.metadata.name, namespace=item.metadata.namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


async def apply_objects(
    client: AsyncClient, objects: list[Any], dry_run: bool, report: Callable[[Change], None]
) -> list[Change]:
    """Server-side apply every object (with `dry_run`, only ask the server what would change)."""
    changes = []
    for item in objects:
        target = describe(item)
        live = await api_call(_live(client, item), target)
        result = await api_call(
            client.apply(item, field_manager=FIELD_MANAGER, force=True, dry_run=dry_run), target
        )
        before = _clean(live.to_dict() if live is not None else None)
        after = _clean(result.to_dict())
        action = "created" if live is None else "configured" if before != after else "unchanged"
        diff = "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                f"live/{target}",
                f"rendered/{target}",
            )
        )
        change = Change(target, action, diff)
        changes.append(change)
        report(change)
    return changes


@dataclass
class Rollout:
    """One Deployment's or Job's progress."""

    target: str
    ready: int
    desired: int
    done: bool
    note: str = ""


async def rollout_state(client: AsyncClient, namespace: str) -> list[Rollout]:
    """Progress of every llmhost Deployment and download Job in the namespace."""
    states = []
    async for dep in client.list(Deployment, namespace=namespace, labels=PART_OF):  # type: ignore[arg-type]
        spec, status = dep.spec, dep.status
        desired = spec.replicas if spec is not None and spec.replicas is not None else 1
        ready = (status.readyReplicas or 0) if status is not None else 0
        updated = (status.updatedReplicas or 0) if status is not None else 0
        generation = (dep.metadata.generation if dep.metadata is not None else None) or 0
        observed = status is not None and (status.observedGeneration or 0) >= generation
        done = observed and updated >= desired and ready >= desired
        states.append(
            Rollout(describe(dep), ready, desired, done, "scaled to zero" if desired == 0 else "")
        )
    async for job in client.list(Job, namespace=namespace, labels=PART_OF):  # type: ignore[arg-type]
        job_status = job.status
        succeeded = (job_status.succeeded or 0) if job_status is not None else 0
        failed = (job_status.failed or 0) if job_status is not None else 0
        note = f"{failed} failed attempts" if failed else ""
        states.append(Rollout(describe(job), succeeded, 1, succeeded >= 1, note))
    states += await _group_states(client, namespace)
    return states


async def _group_states(client: AsyncClient, namespace: str) -> list[Rollout]:
    """Progress of the LeaderWorkerSets (replicas across nodes): groups ready of those asked
    for; none where the CRD is not installed."""
    kind = create_namespaced_resource(
        "leaderworkerset.x-k8s.io", "v1", "LeaderWorkerSet", "leaderworkersets"
    )
    states = []
    try:
        async for group in client.list(kind, namespace=namespace, labels=PART_OF):  # type: ignore[arg-type]
            spec: dict[str, Any] = getattr(group, "spec", None) or {}
            status: dict[str, Any] = getattr(group, "status", None) or {}
            desired = int(spec.get("replicas", 1))
            ready = int(status.get("readyReplicas", 0))
            updated = int(status.get("updatedReplicas", 0))
            done = ready >= desired and updated >= desired
            states.append(Rollout(describe(group), ready, desired, done, "groups"))
    except ApiError as exc:
        if exc.status.code != 404:
            raise
    return states


async def wait_rollout(
    client: AsyncClient,
    namespace: str,
    timeout_s: float,
    show: Callable[[list[Rollout]], None],
    poll_s: float = 2.0,
) -> list[Rollout]:
    """Poll until every Deployment is rolled out and every Job done, or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        states: list[Rollout] = await api_call(
            rollout_state(client, namespace), f"namespace {namespace}"
        )
        show(states)
        if all(s.done for s in states) or time.monotonic() >= deadline:
            return states
        await asyncio.sleep(poll_s)
