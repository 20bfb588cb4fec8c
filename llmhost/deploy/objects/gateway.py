"""The gateway: its config, Deployment (2+ replicas spread over nodes), Service, disruption
budget, CPU autoscaler, and the service account whose Role lets it follow and scale engines."""

from __future__ import annotations

from typing import Any

import yaml

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.meta import (
    CONFIG,
    GATEWAY,
    GATEWAY_PORT,
    http_probe,
    obj,
    restricted_security,
    selector,
)
from llmhost.deploy.objects.scaling import scaled_bounds
from llmhost.deploy.options import RenderOptions

COMPONENT = "gateway"
STORE_SECRET = "llmhost-store"  # key `url`: postgresql://... shared by every gateway replica
ADMIN_SECRET = "llmhost-admin"  # key `key`: the /admin/ API's key (optional)
CONFIG_PATH = "/etc/llmhost/llmhost.yaml"
SCALER_LEASE = "llmhost-scaler"  # the coordination.k8s.io Lease gateways elect a scaler with


def gateway_config(
    engines: list[EngineDeployment], options: RenderOptions, redis_url: str
) -> dict[str, Any]:
    """The llmhost.yaml the gateway pods read: cluster models found through their Services."""
    models = []
    for engine in engines:
        low, high = scaled_bounds(engine)
        # A multi-node group is a LeaderWorkerSet, which the gateway does not scale: it runs
        # the planned count, or KEDA scales it.
        scale = options.scaler == "gateway" and not engine.multi_node
        model: dict[str, Any] = {
            "name": engine.model,
            "engine": engine.engine,
            "context": engine.launch.context,
            "parallel": engine.launch.parallel,
            # Prefix affinity keeps shared prompts where the engine's prefix cache holds them.
            "routing": "prefix",
            "kubernetes": {
                "deployment": engine.deployment,
                "port": engine.launch.port,
                "scale": scale,
                # With the Gateway API, replicas come from the model's InferencePool.
                **({"inference_pool": engine.deployment} if options.gateway_api else {}),
            },
            "replicas": min(high, max(low, 1)),
            "min_replicas": low,
            "max_replicas": high,
        }
        if engine.multi_node and options.scaler == "gateway":  # a fixed count: the plan's
            model.update(replicas=high, min_replicas=high)
        if options.scale_to_zero:
            if scale:
                model["idle_to_zero_s"] = options.idle_to_zero_s
            # A cold start loads weights: hold the first request for as long as that takes.
            model["queue_wait_s"] = float(engine.startup_budget_s)
        models.append(model)
    server = {
        "host": "0.0.0.0",
        "port": GATEWAY_PORT,
        "auth": "keys",
        "redis_url": redis_url,
        "audit_jsonl": "-",
    }
    if options.scaler == "gateway":  # one replica scales at a time; the others forward demand
        server["scaler_lease"] = SCALER_LEASE
    if options.console:  # the web console at /ui, behind admin login
        server["console"] = True
    config: dict[str, Any] = {"server": server, "models": models}
    if options.tiers:  # a fleet plan's tier names: the gateway's tier routing
        config["tiers"] = {name: list(chain) for name, chain in options.tiers}
    return config


def config_map(config: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The gateway config as a ConfigMap (the store URL and admin key stay in Secrets)."""
    cm = obj("v1", "ConfigMap", CONFIG, namespace, COMPONENT, GATEWAY)
    cm["data"] = {"llmhost.yaml": yaml.safe_dump(config, sort_keys=False)}
    return cm


def deployment(options: RenderOptions, config_hash: str) -> dict[str, Any]:
    """Gateway pods: stateless, spread over nodes; a config change rolls them."""
    dep = obj("apps/v1", "Deployment", GATEWAY, options.namespace, COMPONENT, GATEWAY)
    container = {
        "name": "gateway",
        "image": options.gateway_image,
        "command": ["llmhost", "up", "--config", CONFIG_PATH],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": [
            {
                "name": "LLMHOST_STORE_URL",
                "valueFrom": {"secretKeyRef": {"name": STORE_SECRET, "key": "url"}},
            },
            {
                "name": "LLMHOST_ADMIN_KEY",
                "valueFrom": {
                    "secretKeyRef": {"name": ADMIN_SECRET, "key": "key", "optional": True}
                },
            },
            {"name": "HOME", "value": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "readinessProbe": http_probe("/ready", 5, 3, 2),
        "livenessProbe": http_probe("/health", 10, 3, 2),
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "securityContext": {**restricted_security(), "readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/llmhost", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_labels = dict(dep["metadata"]["labels"])
    dep["spec"] = {
        "replicas": options.gateway_replicas,
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(COMPONENT, GATEWAY)},
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {"llmhost.dev/config-sha256": config_hash},
            },
            "spec": {
                "serviceAccountName": GATEWAY,
                "terminationGracePeriodSeconds": 30,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
                "containers": [container],
                "volumes": [
                    {"name": "config", "configMap": {"name": CONFIG}},
                    {"name": "tmp", "emptyDir": {}},
                ],
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {
                                "weight": 100,
                                "podAffinityTerm": {
                                    "topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": selector(COMPONENT, GATEWAY)},
                                },
                            }
                        ]
                    }
                },
            },
        },
    }
    return dep


def service(namespace: str) -> dict[str, Any]:
    """The gateway's ClusterIP Service: the OpenAI API on port 80, metrics on the same port."""
    svc = obj("v1", "Service", GATEWAY, namespace, COMPONENT, GATEWAY)
    svc["spec"] = {
        "selector": selector(COMPONENT, GATEWAY),
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    return svc


def disruption_budget(namespace: str) -> dict[str, Any]:
    """Keep at least one gateway serving through node drains."""
    pdb = obj("policy/v1", "PodDisruptionBudget", GATEWAY, namespace, COMPONENT, GATEWAY)
    pdb["spec"] = {"minAvailable": 1, "selector": {"matchLabels": selector(COMPONENT, GATEWAY)}}
    return pdb


def autoscaler(options: RenderOptions) -> dict[str, Any]:
    """More gateway replicas when their CPU runs hot (the gateway is CPU-bound)."""
    hpa = obj(
        "autoscaling/v2", "HorizontalPodAutoscaler", GATEWAY, options.namespace, COMPONENT, GATEWAY
    )
    hpa["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY},
        "minReplicas": options.gateway_replicas,
        "maxReplicas": max(10, options.gateway_replicas),
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            }
        ],
    }
    return hpa


def rbac(namespace: str) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding: read pods and endpoints, scale Deployments, hold
    the scaler Lease, in this namespace only."""
    account = obj("v1", "ServiceAccount", GATEWAY, namespace, COMPONENT, GATEWAY)
    role = obj("rbac.authorization.k8s.io/v1", "Role", GATEWAY, namespace, COMPONENT, GATEWAY)
    role["rules"] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
        # Replicas from an InferencePool (--gateway-api): read the pool, then its pods.
        {
            "apiGroups": ["inference.networking.k8s.io"],
            "resources": ["inferencepools"],
            "verbs": ["get", "list", "watch"],
        },
        # The scaler election (llmhost.gateway.leader): read, create and renew the Lease.
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
    ]
    binding = obj(
        "rbac.authorization.k8s.io/v1", "RoleBinding", GATEWAY, namespace, COMPONENT, GATEWAY
    )
    binding["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY}
    binding["subjects"] = [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": namespace}]
    return [account, role, binding]
