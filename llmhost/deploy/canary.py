"""`llmhost apply --canary N`: try a rendered model update on N% of the traffic first.

The render of the new revision is applied with three changes: each engine Deployment (and its
Service) goes in under a `-canary` name with its own selector, so the running Deployment keeps
its pods and the old revision keeps serving; the canary runs one replica and is not scaled; and
the gateway's config gains a `<model>-canary` model over that Service, with the model's
`canary: {model, percent}` routing N% of its requests there. The gateway Deployment's config
digest changes with it, so gateways roll to the new routing. Promoting is a plain `llmhost
apply` of the same render (the main Deployment rolls to the new revision and the canary objects
are deleted); `llmhost rollback` deletes the canary and leaves everything on the old revision.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import yaml

from llmhost.deploy.catalog import DeployError

TRACK = "llmhost.dev/track"  # label on canary objects, for finding them again
INSTANCE = "app.kubernetes.io/instance"
CONFIG_FILE = "llmhost.yaml"
CONFIG_DIGEST = "llmhost.dev/config-sha256"


def canary_documents(documents: list[dict[str, Any]], percent: float) -> list[dict[str, Any]]:
    """The rendered documents, changed for a canary of `percent` (see the module's doc)."""
    if not 0 < percent < 100:
        raise DeployError(f"--canary {percent:g}: give a share between 0 and 100 (percent)")
    engines = {
        doc["metadata"]["name"]: doc
        for doc in documents
        if doc.get("kind") == "Deployment" and _is_engine(doc)
    }
    if not engines:
        raise DeployError("--canary: this render has no engine Deployment to try")
    config_map = next(
        (d for d in documents if d.get("kind") == "ConfigMap" and CONFIG_FILE in d.get("data", {})),
        None,
    )
    if config_map is None:
        raise DeployError("--canary: this render has no gateway config to route with")
    result: list[dict[str, Any]] = []
    for doc in documents:
        name = doc.get("metadata", {}).get("name")
        if doc.get("kind") == "Deployment" and name in engines:
            result.append(_canary_deployment(doc))
        elif doc.get("kind") == "Service" and name in engines:
            result.append(_canary_service(doc))
        elif doc.get("kind") in ("HorizontalPodAutoscaler", "PodDisruptionBudget") and _targets(
            doc, engines
        ):
            continue  # the canary runs one fixed replica; the live objects stay as they are
        elif doc is config_map:
            result.append(_canary_config(doc, engines, percent))
        else:
            result.append(doc)
    digest = _config_digest(result)
    for i, doc in enumerate(result):
        template = doc.get("spec", {}).get("template", {}).get("metadata", {})
        if doc.get("kind") == "Deployment" and CONFIG_DIGEST in template.get("annotations", {}):
            rolled = result[i] = copy.deepcopy(doc)  # the gateways roll to the new routing
            rolled["spec"]["template"]["metadata"]["annotations"][CONFIG_DIGEST] = digest
    return result


def _is_engine(doc: dict[str, Any]) -> bool:
    return "llmhost.dev/model" in doc["metadata"].get("annotations", {})


def _targets(doc: dict[str, Any], engines: dict[str, Any]) -> bool:
    spec = doc.get("spec", {})
    target = spec.get("scaleTargetRef", {}).get("name")
    if target in engines:
        return True
    labels = spec.get("selector", {}).get("matchLabels", {})
    instances = {e["spec"]["selector"]["matchLabels"].get(INSTANCE) for e in engines.values()}
    return labels.get(INSTANCE) in instances


def _relabel(labels: dict[str, str]) -> None:
    if INSTANCE in labels:
        labels[INSTANCE] = f"{labels[INSTANCE]}-canary"
    labels[TRACK] = "canary"


def _canary_deployment(doc: dict[str, Any]) -> dict[str, Any]:
    dep = copy.deepcopy(doc)
    dep["metadata"]["name"] += "-canary"
    _relabel(dep["metadata"]["labels"])
    spec = dep["spec"]
    spec["replicas"] = 1
    _relabel(spec["selector"]["matchLabels"])
    _relabel(spec["template"]["metadata"]["labels"])
    return dep


def _canary_service(doc: dict[str, Any]) -> dict[str, Any]:
    svc = copy.deepcopy(doc)
    svc["metadata"]["name"] += "-canary"
    _relabel(svc["metadata"]["labels"])
    _relabel(svc["spec"]["selector"])
    return svc


def _canary_config(
    doc: dict[str, Any], engines: dict[str, dict[str, Any]], percent: float
) -> dict[str, Any]:
    cm = copy.deepcopy(doc)
    config = yaml.safe_load(cm["data"][CONFIG_FILE])
    added = []
    for model in config["models"]:
        source = model.get("kubernetes") or {}
        if source.get("deployment") not in engines:
            continue
        name = f"{model['name']}-canary"
        trial = copy.deepcopy(model)
        trial.update(
            name=name,
            aliases=[],
            upstream_model=model.get("upstream_model") or model["name"],
            replicas=1,
            min_replicas=1,
            max_replicas=1,
        )
        trial.pop("idle_to_zero_s", None)
        trial.pop("canary", None)
        trial["kubernetes"] = {
            **source,
            "deployment": f"{source['deployment']}-canary",
            "scale": False,
        }
        trial["kubernetes"].pop("service", None)
        model["canary"] = {"model": name, "percent": percent}
        added.append(trial)
    config["models"] += added
    cm["data"][CONFIG_FILE] = yaml.safe_dump(config, sort_keys=False)
    return cm


def _config_digest(documents: list[dict[str, Any]]) -> str:
    for doc in documents:
        if doc.get("kind") == "ConfigMap" and CONFIG_FILE in doc.get("data", {}):
            return hashlib.sha256(doc["data"][CONFIG_FILE].encode()).hexdigest()[:16]
    raise DeployError("no gateway config")


async def remove_canaries(client: Any, namespace: str, model: str | None = None) -> list[str]:
    """Delete the canary Deployments and Services in `namespace` (of one model, or all); the
    objects deleted, as Kind/name."""
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import Service

    labels = {TRACK: "canary"}
    removed = []
    for kind in (Deployment, Service):
        try:
            found = [item async for item in client.list(kind, namespace=namespace, labels=labels)]
        except ApiError as exc:
            if exc.status.code == 404:
                continue  # nothing of that kind here
            raise
        for item in found:
            annotations = item.metadata.annotations or {}
            if model is not None and annotations.get("llmhost.dev/model") not in (model, None):
                continue
            await client.delete(kind, item.metadata.name, namespace=namespace)
            removed.append(f"{kind.__name__}/{item.metadata.name}")
    return removed
