"""Render plans into Kubernetes objects and write them as a Kustomize directory.

`render` is a pure function of the plans and options (same input, same bytes), so its output can
be reviewed in a pull request and checked by golden files. `write_kustomize` writes one file per
object kind plus a kustomization.yaml listing them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from llmhost.deploy.catalog import FLAVOURS, DeployError, cluster_catalog
from llmhost.deploy.model import EngineDeployment, from_plan
from llmhost.deploy.objects import engine as engine_objects
from llmhost.deploy.objects import (
    gateway,
    gateway_api,
    monitoring,
    network,
    redis,
    scaling,
    weights,
)
from llmhost.deploy.objects.meta import obj
from llmhost.deploy.options import RenderOptions
from llmhost.errors import UnknownChoiceError
from llmhost.paths import output_directory
from llmhost.plan import Plan

KEDA_PROMETHEUS = "http://prometheus-operated.{ns}.svc:9090"
NODE_CLASS = "default"  # the EC2NodeClass a Karpenter install usually has
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def engines_for(plans: list[Plan], options: RenderOptions) -> list[EngineDeployment]:
    """One engine deployment per plan; names must not collide."""
    if not plans:
        raise DeployError("nothing to render: give at least one plan")
    if options.provider is not None and options.provider not in FLAVOURS:
        known = cluster_catalog().providers  # plan providers name their flavour: gcp -> gke
        if options.provider not in known:
            raise UnknownChoiceError("provider", options.provider, (*FLAVOURS, *known))
        options = dataclasses.replace(options, provider=known[options.provider])
    engines = [from_plan(p, options) for p in plans]
    names = [e.name for e in engines]
    if len(set(names)) != len(names):
        raise DeployError(f"two plans for the same model: {', '.join(sorted(names))}")
    return engines


def render(plans: list[Plan], options: RenderOptions) -> list[dict[str, Any]]:
    """Every object for the plans' models and one gateway, in apply order."""
    if not _DNS_LABEL.match(options.namespace):
        raise DeployError(f"namespace '{options.namespace}' is not a valid DNS-1123 label")
    if options.gateway_replicas < 1:
        raise DeployError("--gateway-replicas must be at least 1")
    engines = engines_for(plans, options)
    images = cluster_catalog().images
    ns = options.namespace
    namespace = obj("v1", "Namespace", ns, None, "namespace", ns)
    namespace["metadata"]["labels"]["pod-security.kubernetes.io/warn"] = "restricted"
    objects: list[dict[str, Any]] = [namespace, *gateway.rbac(ns)]
    in_cluster_redis = options.redis_url is None
    redis_url = options.redis_url or redis.redis_url(ns)
    config = gateway.gateway_config(engines, options, redis_url)
    config_map = gateway.config_map(config, ns)
    config_hash = hashlib.sha256(config_map["data"]["llmhost.yaml"].encode()).hexdigest()[:16]
    objects += [
        config_map,
        gateway.deployment(options, config_hash),
        gateway.service(ns),
        gateway.disruption_budget(ns),
        gateway.autoscaler(options),
    ]
    if in_cluster_redis:
        objects += redis.objects(ns, images["redis"])
    for engine in engines:
        objects += engine_objects_for(engine, options, images)
    if options.network_policies:
        objects += network.policies(engines, options, in_cluster_redis)
    if options.ingress_host:
        objects.append(network.ingress(options))
        if options.tls:
            objects.append(network.certificate(options))
    if options.gateway_api:
        objects += gateway_api.objects(engines, options)
    if options.monitoring:
        objects += monitoring.objects(engines, options)
    return objects


def engine_objects_for(
    engine: EngineDeployment, options: RenderOptions, images: dict[str, str]
) -> list[dict[str, Any]]:
    """One model's weights volume and download Job, its engine pods (a Deployment, a spot one
    beside an on-demand base, or a LeaderWorkerSet across nodes), Service, disruption budget,
    and who scales it."""
    ns = options.namespace
    image = images[engine.engine]
    found: list[dict[str, Any]] = [
        weights.pvc(engine, ns, options.storage_class),
        weights.download_job(engine, ns, weights.download_image(engine, images)),
    ]
    if engine.multi_node:
        if engine.on_demand_base:
            raise DeployError(
                f"{engine.model}: --on-demand-base is for single-node replicas; "
                "this plan spans nodes"
            )
        if options.scale_to_zero and options.scaler == "gateway":
            raise DeployError(
                f"{engine.model}: a replica across nodes is a LeaderWorkerSet, "
                "which the gateway does not scale; use --scaler keda to scale "
                "it to zero"
            )
        found.append(engine_objects.leader_worker_set(engine, ns, image, options))
    elif engine.spot:
        found.append(engine_objects.deployment(engine, ns, image, options, "spot"))
        if engine.on_demand_base:
            found.append(engine_objects.deployment(engine, ns, image, options, "on-demand"))
    else:
        found.append(engine_objects.deployment(engine, ns, image, options))
    found += [engine_objects.service(engine, ns), engine_objects.disruption_budget(engine, ns)]
    if options.scaler == "keda":
        prometheus = KEDA_PROMETHEUS.format(ns=options.monitoring_namespace)
        found.append(scaling.scaled_object(engine, ns, prometheus, options.idle_to_zero_s))
    if engine.spot and engine.gpus and engine.flavour == "eks":
        found += scaling.node_pools(engine, NODE_CLASS)
    return found


def file_name(kind: str) -> str:
    """The file an object kind goes to: PersistentVolumeClaim -> persistent-volume-claim.yaml,
    HTTPRoute -> http-route.yaml."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", kind)
    return words.lower() + ".yaml"


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (config, scripts, dashboards), so they stay readable;
    no anchors and aliases, which some tools reject and every reader trips over."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(objects: list[dict[str, Any]]) -> str:
    """Objects as one YAML stream."""
    return "---\n".join(yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=100) for o in objects)


def write_kustomize(objects: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write one file per kind (in first-seen order) and kustomization.yaml; the paths written.

    Files from an earlier render that no longer have objects are removed, so the directory always
    equals the render.
    """
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in objects:
        by_kind[item["kind"]].append(item)
    output_directory(out)
    written = []
    for kind, items in by_kind.items():
        path = out / file_name(kind)
        path.write_text(dump(items))
        written.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [p.name for p in written],
    }
    index = out / "kustomization.yaml"
    index.write_text(
        "# Written by `llmhost render`; edit the plan, not these files.\n"
        + yaml.safe_dump(kustomization, sort_keys=False)
    )
    keep = {p.name for p in written} | {index.name}
    for stale in out.glob("*.yaml"):
        if stale.name not in keep and _rendered(stale):
            stale.unlink()
    return [index, *written]


def _rendered(path: Path) -> bool:
    """True for files llmhost wrote (they carry its managed-by label)."""
    return "app.kubernetes.io/managed-by: llmhost" in path.read_text()
