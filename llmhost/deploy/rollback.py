"""`llmhost rollback`: put each engine Deployment back on its previous pod template, as
`kubectl rollout undo` does, so the previous weights revision serves again.

A Deployment keeps its earlier pod templates in its ReplicaSets (`revisionHistoryLimit: 3`),
numbered by the `deployment.kubernetes.io/revision` annotation. Rolling back replaces the
Deployment's template with the one of the newest ReplicaSet older than the current one; the
rolling update (maxSurge 1, maxUnavailable 0) then brings it back pod by pod, and since that
revision's weights are still on the volume (each revision has its own directory), its pods
start without a download. The next `llmhost apply` of a render with the new revision rolls
forward again: re-render with the previous `--weights` to stay back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.types import PatchType

from llmhost.deploy.canary import remove_canaries
from llmhost.deploy.catalog import DeployError
from llmhost.deploy.model import slug

REVISION = "deployment.kubernetes.io/revision"
WEIGHTS = "llmhost.dev/weights-revision"
ENGINES = {"app.kubernetes.io/part-of": "llmhost", "app.kubernetes.io/name": "engine"}


@dataclass(frozen=True)
class Rollback:
    """One Deployment put back: from which revision to which, and the weights it serves."""

    deployment: str
    from_revision: int
    to_revision: int
    weights: str


def _revision(item: Any) -> int:
    annotations = (item.metadata.annotations or {}) if item.metadata is not None else {}
    try:
        return int(annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def _owned_by(rs: Any, dep: Any) -> bool:
    owners = (rs.metadata.ownerReferences or []) if rs.metadata is not None else []
    return any(o.kind == "Deployment" and o.uid == dep.metadata.uid for o in owners)


async def previous_template(client: AsyncClient, dep: Any) -> tuple[int, Any]:
    """(revision, ReplicaSet) of the newest template older than the Deployment's own."""
    current = _revision(dep)
    older = []
    async for rs in client.list(ReplicaSet, namespace=dep.metadata.namespace):
        if _owned_by(rs, dep) and 0 < _revision(rs) < current:
            older.append((_revision(rs), rs))
    if not older:
        raise DeployError(f"deployment {dep.metadata.name} has no earlier revision to go back to")
    return max(older, key=lambda pair: pair[0])


async def rollback(client: AsyncClient, namespace: str, model: str | None = None) -> list[Rollback]:
    """Roll every engine Deployment in `namespace` (or only `model`'s) back one revision; while
    a canary runs (`apply --canary`), remove it instead: the old revision never stopped."""
    removed = await remove_canaries(client, namespace, model)
    if removed:
        return [Rollback(name, 0, 0, "canary removed") for name in removed]
    labels = dict(ENGINES)
    if model is not None:
        labels["app.kubernetes.io/instance"] = slug(model)
    done = []
    found = False
    async for dep in client.list(Deployment, namespace=namespace, labels=labels):  # type: ignore[arg-type]
        found = True
        name = str(dep.metadata.name) if dep.metadata is not None else ""
        revision, rs = await previous_template(client, dep)
        template = copy.deepcopy(rs.spec.template.to_dict())
        # The ReplicaSet's own label is the controller's, not the template's.
        template["metadata"].get("labels", {}).pop("pod-template-hash", None)
        weights = (rs.metadata.annotations or {}).get(WEIGHTS, "")
        patch: list[dict[str, Any]] = [
            {"op": "replace", "path": "/spec/template", "value": template}
        ]
        if weights:
            patch.append(
                {
                    "op": "add",
                    "path": "/metadata/annotations/" + WEIGHTS.replace("/", "~1"),
                    "value": weights,
                }
            )
        await client.patch(Deployment, name, patch, namespace=namespace, patch_type=PatchType.JSON)
        done.append(Rollback(name, _revision(dep), revision, weights))
    if not found:
        which = f"model '{model}'" if model else "any model"
        raise DeployError(f"no engine Deployment for {which} in namespace {namespace}")
    return done
