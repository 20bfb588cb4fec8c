"""Engine replicas by someone other than the gateway: a KEDA ScaledObject on the gateway's own
queue metrics, and, for spot plans on EKS, the Karpenter NodePool that supplies the GPU nodes."""

from __future__ import annotations

import math
from typing import Any

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.engine import GPU_RESOURCE
from llmhost.deploy.objects.meta import obj

PROMETHEUS_PORT = 9090


def scaled_object(engine: EngineDeployment, namespace: str, prometheus: str,
                  idle_s: float) -> dict[str, Any]:  # fmt: skip
    """KEDA scales the engine Deployment on requests in flight plus queued at the gateways.

    The gateway's metrics exist while the engine is at zero and count the requests it holds, so
    the first request lifts the model from zero while the gateway keeps it waiting.
    """
    so = obj("keda.sh/v1alpha1", "ScaledObject", engine.deployment, namespace, "engine",
             engine.name)  # fmt: skip
    model = engine.model
    query = (f'sum(llmhost_inflight_requests{{model="{model}"}}) + '
             f'sum(llmhost_queued_requests{{model="{model}"}})')  # fmt: skip
    so["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "name": engine.deployment},
        "minReplicaCount": engine.min_replicas,
        "maxReplicaCount": engine.replicas,
        "pollingInterval": 15,
        "cooldownPeriod": math.ceil(idle_s),
        "triggers": [{
            "type": "prometheus",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": prometheus,
                "query": query,
                "threshold": str(engine.launch.parallel),
                "activationThreshold": "0",
            },
        }],
    }  # fmt: skip
    return so


def node_pool(engine: EngineDeployment, node_class: str) -> dict[str, Any]:
    """Karpenter NodePool for the engine's GPU: spot first, on-demand when spot runs out,
    GPU-tainted, consolidated when empty or underused."""
    pool = obj("karpenter.sh/v1", "NodePool", f"llmhost-{engine.name}", None, "nodepool",
               engine.name)  # fmt: skip
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "In",
         "values": [str(engine.gpus)]},
    ]  # fmt: skip
    requirements += [{"key": k, "operator": "In", "values": [v]}
                     for k, v in sorted(engine.gpu_label.items())]  # fmt: skip
    pool["spec"] = {
        "template": {
            "metadata": {"labels": {"llmhost.dev/pool": engine.name}},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                 "name": node_class},
                "requirements": requirements,
                "taints": [{"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}],
                "expireAfter": "720h",
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                       "consolidateAfter": "5m"},
        "limits": {GPU_RESOURCE: str(engine.gpus * engine.replicas)},
    }  # fmt: skip
    return pool
