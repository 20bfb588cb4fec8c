"""An engine's Deployment, its headless Service and its PodDisruptionBudget.

The container's arguments come from the engine adapter (the same code that launches local
replicas). The pod asks for its GPUs, lands on nodes with the planned GPU type, tolerates the
GPU taint, waits for the weights, and is given a startup allowance sized from the plan's load
time before readiness and liveness checks take over.
"""

from __future__ import annotations

import math
from typing import Any

from llmhost.deploy.model import MODELS_DIR, EngineDeployment
from llmhost.deploy.objects.meta import http_probe, obj, selector
from llmhost.deploy.objects.weights import marker, volume_name
from llmhost.engines import adapter

COMPONENT = "engine"
GPU_RESOURCE = "nvidia.com/gpu"
STARTUP_PERIOD_S = 10
# On SIGTERM the pod leaves the Service's endpoints; the gateway reads them every 2 s. The
# preStop pause lets it stop sending new requests before the engine starts shutting down, and
# the grace period lets running streams finish (spot: within the two-minute reclaim notice).
PRESTOP_S = 10
GRACE_S = {False: 120, True: 90}
COMMAND = {"vllm": ["vllm"], "llamacpp": ["/app/llama-server"], "ollama": ["/bin/ollama"]}


def deployment(engine: EngineDeployment, namespace: str, image: str) -> dict[str, Any]:
    """The engine Deployment. It sets no replica count: that belongs to the scaler (the
    gateway's or KEDA), and a count here would be reset by every apply."""
    kind = adapter(engine.engine)
    dep = obj("apps/v1", "Deployment", engine.deployment, namespace, COMPONENT, engine.name)
    dep["metadata"]["annotations"] = {"llmhost.dev/model": engine.model}
    pod_labels = dict(dep["metadata"]["labels"])
    container: dict[str, Any] = {
        "name": engine.engine,
        "image": image,
        "command": COMMAND[engine.engine],
        "args": kind.launch_args(engine.launch),
        "ports": [{"name": "http", "containerPort": engine.launch.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in engine_env(engine).items()],
        "resources": _resources(engine),
        "startupProbe": http_probe(kind.ready_path, STARTUP_PERIOD_S,
                                   math.ceil(engine.startup_budget_s / STARTUP_PERIOD_S)),
        "readinessProbe": http_probe(kind.ready_path, 5, 3),
        "livenessProbe": http_probe(kind.health_path, 10, 6),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_S}}},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}],
    }  # fmt: skip
    volumes: list[dict[str, Any]] = [
        {"name": "weights",
         "persistentVolumeClaim": {"claimName": volume_name(engine), "readOnly": True}},
    ]  # fmt: skip
    if engine.engine == "vllm":  # NCCL between tensor-parallel workers uses shared memory
        container["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
        shm = f"{max(1, engine.gpus) * 8}Gi"
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    wait = {
        "name": "wait-for-weights",
        "image": image,
        "command": ["sh", "-c", f"until [ -f {marker(engine)} ]; do echo waiting for "
                                f"weights; sleep 10; done"],
        "securityContext": container["securityContext"],
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}],
    }  # fmt: skip
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": GRACE_S[engine.spot],
        "initContainers": [wait],
        "containers": [container],
        "volumes": volumes,
        "topologySpreadConstraints": [
            _spread("kubernetes.io/hostname", engine.name),
            _spread("topology.kubernetes.io/zone", engine.name),
        ],
    }
    if engine.gpus:
        pod["nodeSelector"] = dict(engine.gpu_label)
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    dep["spec"] = {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(COMPONENT, engine.name)},
        # A new replica must be ready before an old one goes: GPUs are too scarce to be short.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": {"labels": pod_labels}, "spec": pod},
    }  # fmt: skip
    return dep


def service(engine: EngineDeployment, namespace: str) -> dict[str, Any]:
    """Headless Service: its EndpointSlices list each ready engine pod for the gateway."""
    svc = obj("v1", "Service", engine.deployment, namespace, COMPONENT, engine.name)
    svc["spec"] = {
        "clusterIP": "None",
        "selector": selector(COMPONENT, engine.name),
        "ports": [{"name": "http", "port": engine.launch.port, "targetPort": "http",
                   "protocol": "TCP"}],
        "publishNotReadyAddresses": False,
    }  # fmt: skip
    return svc


def disruption_budget(engine: EngineDeployment, namespace: str) -> dict[str, Any]:
    """At most one engine replica out at a time through drains and consolidation."""
    pdb = obj("policy/v1", "PodDisruptionBudget", engine.deployment, namespace, COMPONENT,
              engine.name)  # fmt: skip
    pdb["spec"] = {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector(COMPONENT, engine.name)},
    }
    return pdb


def engine_env(engine: EngineDeployment) -> dict[str, str]:
    """The engine container's environment: the adapter's, plus offline weights."""
    env = dict(sorted(adapter(engine.engine).launch_env(engine.launch).items()))
    if engine.engine == "vllm":
        env["HF_HUB_OFFLINE"] = "1"  # the weights are on the volume already
        env["VLLM_NO_USAGE_STATS"] = "1"
    if engine.engine == "ollama":
        env["OLLAMA_MODELS"] = engine.weights.directory
    return env


def _resources(engine: EngineDeployment) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": str(engine.cpu), "memory": f"{engine.memory_gib}Gi"}
    limits: dict[str, Any] = {"memory": f"{engine.memory_gib * 2}Gi"}
    if engine.gpus:
        requests[GPU_RESOURCE] = engine.gpus
        limits[GPU_RESOURCE] = engine.gpus
    return {"requests": requests, "limits": limits}


def _spread(key: str, name: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector(COMPONENT, name)},
    }
