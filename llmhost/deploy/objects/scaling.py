"""Engine replicas by someone other than the gateway: a KEDA ScaledObject on the gateway's own
queue metrics, and, for spot plans on EKS, the Karpenter NodePool that supplies the GPU nodes."""

from __future__ import annotations

import math
from typing import Any

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.engine import GPU_RESOURCE
from llmhost.deploy.objects.meta import obj

PROMETHEUS_PORT = 9090


def scaled_bounds(engine: EngineDeployment) -> tuple[int, int]:
    """(min, max) of the scaled part: all replicas, less an on-demand base kept apart."""
    base = engine.on_demand_base
    return max(0, engine.min_replicas - base), max(1, engine.replicas - base)


def scaled_object(
    engine: EngineDeployment, namespace: str, prometheus: str, idle_s: float
) -> dict[str, Any]:
    """KEDA scales the engine Deployment on requests in flight plus queued at the gateways.

    The gateway's metrics exist while the engine is at zero and count the requests it holds, so
    the first request lifts the model from zero while the gateway keeps it waiting.
    """
    so = obj(
        "keda.sh/v1alpha1", "ScaledObject", engine.deployment, namespace, "engine", engine.name
    )
    model = engine.model
    query = (
        f'sum(llmhost_inflight_requests{{model="{model}"}}) + '
        f'sum(llmhost_queued_requests{{model="{model}"}})'
    )
    target = (
        {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"}
        if engine.multi_node
        else {"apiVersion": "apps/v1", "kind": "Deployment"}
    )
    low, high = scaled_bounds(engine)
    so["spec"] = {
        "scaleTargetRef": {**target, "name": engine.deployment},
        "minReplicaCount": low,
        "maxReplicaCount": high,
        "pollingInterval": 15,
        "cooldownPeriod": math.ceil(idle_s),
        "triggers": [
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": prometheus,
                    "query": query,
                    "threshold": str(engine.launch.parallel),
                    "activationThreshold": "0",
                },
            }
        ],
    }
    return so


def node_pools(engine: EngineDeployment, node_class: str) -> list[dict[str, Any]]:
    """Karpenter NodePools for a spot engine's GPU: a spot pool, and an on-demand pool of lower
    weight that Karpenter falls back to when spot has no capacity (and that holds the
    on-demand base). Both GPU-tainted, consolidated when empty or underused."""
    return [_pool(engine, node_class, "spot", 100), _pool(engine, node_class, "on-demand", 10)]


def _pool(engine: EngineDeployment, node_class: str, capacity: str, weight: int) -> dict[str, Any]:
    suffix = "" if capacity == "spot" else "-on-demand"
    pool = obj(
        "karpenter.sh/v1",
        "NodePool",
        f"llmhost-{engine.name}{suffix}",
        None,
        "nodepool",
        engine.name,
    )
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {
            "key": "karpenter.k8s.aws/instance-gpu-count",
            "operator": "In",
            "values": [str(engine.gpus_per_pod)],
        },
    ]
    requirements += [
        {"key": k, "operator": "In", "values": [v]} for k, v in sorted(engine.gpu_label.items())
    ]
    pool["spec"] = {
        "weight": weight,
        "template": {
            "metadata": {"labels": {"llmhost.dev/pool": engine.name}},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": node_class,
                },
                "requirements": requirements,
                "taints": [{"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}],
                "expireAfter": "720h",
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m"},
        "limits": {GPU_RESOURCE: str(engine.gpus * engine.replicas)},
    }
    return pool
