"""An engine's Deployment (or, across nodes, LeaderWorkerSet), its headless Service and its
PodDisruptionBudget.

The container's arguments come from the engine adapter (the same code that launches local
replicas). The pod asks for its GPUs, lands on nodes with the planned GPU type, tolerates the
GPU taint, waits for the weights, and is given a startup allowance sized from the plan's load
time before readiness and liveness checks take over.
"""

from __future__ import annotations

import math
import shlex
from typing import Any, Literal

from llmhost.deploy.catalog import DeployError, cluster_catalog
from llmhost.deploy.model import MODELS_DIR, EngineDeployment
from llmhost.deploy.objects.meta import http_probe, obj, restricted_security, selector
from llmhost.deploy.objects.weights import marker, volume_name
from llmhost.deploy.options import RenderOptions
from llmhost.engines import adapter

COMPONENT = "engine"
GPU_RESOURCE = "nvidia.com/gpu"
STARTUP_PERIOD_S = 10
# On SIGTERM the pod leaves the Service's endpoints; the gateway reads them every 2 s. The
# preStop pause lets it stop sending new requests, then lets the longest running request finish
# (the plan's, `EngineDeployment.drain_s`) before the engine is told to stop; the grace period
# covers both plus the engine's own shutdown.
PRESTOP_S = 10
SHUTDOWN_S = 15
SHM_PER_GPU_GIB = 8
COMMAND = {"vllm": ["vllm"], "llamacpp": ["/app/llama-server"], "ollama": ["/bin/ollama"]}
CAPACITY = "llmhost.dev/capacity"  # spot or on-demand, when a model runs on both
ROLE = "llmhost.dev/role"  # leader or worker, in a multi-node group
Capacity = Literal["spot", "on-demand"]
Role = Literal["single", "leader", "worker"]


def prestop_s(engine: EngineDeployment) -> int:
    """Seconds a stopping engine pod keeps serving: endpoint propagation plus the longest
    request."""
    return PRESTOP_S + engine.drain_s


def grace_s(engine: EngineDeployment) -> int:
    """terminationGracePeriodSeconds: the preStop drain plus the engine's shutdown."""
    return prestop_s(engine) + SHUTDOWN_S


def placement(
    engine: EngineDeployment, options: RenderOptions, capacity: Capacity | None
) -> dict[str, Any]:
    """nodeSelector, tolerations and affinity: the planned GPU, the user's node labels, and
    spot or on-demand nodes as the provider marks them."""
    if not engine.gpus:
        return {"nodeSelector": dict(options.node_labels)} if options.node_labels else {}
    selector_: dict[str, str] = {**engine.gpu_label, **dict(options.node_labels)}
    tolerations: list[dict[str, Any]] = [
        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
    ]
    required: list[dict[str, Any]] = []
    preferred: list[dict[str, Any]] = []
    marks = cluster_catalog().spot.get(engine.flavour)
    if capacity == "spot":
        if engine.flavour == "gke" and marks:
            selector_[marks["label"]] = marks["spot"]
            if marks.get("taint"):
                spot_taint = {"key": marks["label"], "operator": "Equal", "value": marks["spot"]}
                tolerations.append({**spot_taint, "effect": "NoSchedule"})
        elif engine.flavour == "eks" and marks:
            # Karpenter's spot NodePool outweighs the on-demand fallback pool; existing spot
            # nodes are preferred, on-demand ones taken only when spot has none.
            preferred.append(
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": marks["label"], "operator": "In", "values": [marks["spot"]]}
                        ]
                    },
                }
            )
        else:
            if not options.spot_labels:
                raise DeployError(
                    f"{engine.model}: the plan is priced at spot; say how spot "
                    "nodes are labelled with --spot-label KEY=VALUE (and "
                    "--spot-toleration KEY=VALUE:EFFECT if they are tainted)"
                )
            selector_.update(dict(options.spot_labels))
        for key, value, effect in options.spot_tolerations:
            tolerations.append({"key": key, "operator": "Equal", "value": value, "effect": effect})
    elif capacity == "on-demand":
        if engine.flavour == "gke" and marks:
            required.append({"key": marks["label"], "operator": "DoesNotExist"})
        elif engine.flavour == "eks" and marks:
            selector_[marks["label"]] = marks["on_demand"]
        else:
            required += [
                {"key": k, "operator": "NotIn", "values": [v]} for k, v in options.spot_labels
            ]
    result: dict[str, Any] = {"nodeSelector": selector_, "tolerations": tolerations}
    affinity: dict[str, Any] = {}
    if required:
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": required}]
        }
    if preferred:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    if affinity:
        result["affinity"] = {"nodeAffinity": affinity}
    return result


def pod_spec(
    engine: EngineDeployment,
    image: str,
    options: RenderOptions,
    role: Role,
    capacity: Capacity | None,
) -> dict[str, Any]:
    """One engine pod: a whole replica (`single`), or the leader or a worker of a group."""
    kind = adapter(engine.engine)
    args = kind.launch_args(engine.launch)
    container: dict[str, Any] = {
        "name": engine.engine,
        "image": image,
        "command": COMMAND[engine.engine],
        "args": args,
        "ports": [{"name": "http", "containerPort": engine.launch.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in engine_env(engine).items()],
        "resources": _resources(engine),
        "startupProbe": http_probe(
            kind.ready_path, STARTUP_PERIOD_S, math.ceil(engine.startup_budget_s / STARTUP_PERIOD_S)
        ),
        "readinessProbe": http_probe(kind.ready_path, 5, 3),
        "livenessProbe": http_probe(kind.health_path, 10, 6),
        "lifecycle": {"preStop": {"sleep": {"seconds": prestop_s(engine)}}},
        "securityContext": restricted_security(),
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}],
    }
    helper = cluster_catalog().ray_helper
    if role == "leader":
        serve = " ".join(shlex.quote(a) for a in [*COMMAND["vllm"], *args])
        container["command"] = [
            "sh",
            "-c",
            f"{helper} leader --ray_cluster_size=$(LWS_GROUP_SIZE) && exec {serve}",
        ]
        container["args"] = []
    elif role == "worker":  # no API of its own: readiness is the leader's
        container["command"] = [
            "sh",
            "-c",
            f"{helper} worker --ray_address=$(LWS_LEADER_ADDRESS)",
        ]
        container["args"] = []
        for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
            del container[key]
    if not container["args"]:
        del container["args"]
    volumes: list[dict[str, Any]] = [
        {
            "name": "weights",
            "persistentVolumeClaim": {"claimName": volume_name(engine), "readOnly": True},
        },
    ]
    if engine.engine == "vllm":  # NCCL between tensor-parallel workers uses shared memory
        container["volumeMounts"].append({"name": "shm", "mountPath": "/dev/shm"})
        shm = f"{shm_gib(engine)}Gi"
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    wait = {
        "name": "wait-for-weights",
        "image": image,
        "command": [
            "sh",
            "-c",
            f"until [ -f {marker(engine)} ]; do echo waiting for "
            f"weights {engine.weights.label}; sleep 10; done",
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {**restricted_security(), "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "weights", "mountPath": MODELS_DIR, "readOnly": True}],
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": grace_s(engine),
        "initContainers": [wait],
        "containers": [container],
        "volumes": volumes,
    }
    if not engine.multi_node:
        pod["topologySpreadConstraints"] = [
            _spread("kubernetes.io/hostname", engine.name),
            _spread("topology.kubernetes.io/zone", engine.name),
        ]
    pod.update(placement(engine, options, capacity))
    return pod


def deployment(
    engine: EngineDeployment,
    namespace: str,
    image: str,
    options: RenderOptions,
    capacity: Capacity | None = None,
) -> dict[str, Any]:
    """The engine Deployment. It sets no replica count: that belongs to the scaler (the
    gateway's or KEDA), and a count here would be reset by every apply. The on-demand base of
    a spot model is the exception: a fixed count of its own (`--on-demand-base`)."""
    split = engine.on_demand_base > 0
    name = (
        f"{engine.deployment}-on-demand"
        if split and capacity == "on-demand"
        else (engine.deployment)
    )
    dep = obj("apps/v1", "Deployment", name, namespace, COMPONENT, engine.name)
    dep["metadata"]["annotations"] = {
        "llmhost.dev/model": engine.model,
        "llmhost.dev/weights-revision": engine.weights.label,
    }
    match = selector(COMPONENT, engine.name)
    pod_labels = dict(dep["metadata"]["labels"])
    if split and capacity is not None:  # two Deployments: selectors must not overlap
        match[CAPACITY] = pod_labels[CAPACITY] = capacity
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": match},
        # A new replica must be ready before an old one goes: GPUs are too scarce to be short.
        # A new weights revision changes the pod template (its marker), so the roll starts
        # with pods that wait for that revision's download, while the old ones keep serving.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": pod_spec(engine, image, options, "single", capacity),
        },
    }
    if split and capacity == "on-demand":
        spec = {"replicas": engine.on_demand_base, **spec}
    dep["spec"] = spec
    return dep


def leader_worker_set(
    engine: EngineDeployment, namespace: str, image: str, options: RenderOptions
) -> dict[str, Any]:
    """A replica that spans nodes: a LeaderWorkerSet group of `pods_per_replica` pods, the
    leader serving the API (and its readiness), the workers joining its Ray cluster. Any pod's
    restart recreates the whole group, as vLLM cannot lose a stage and go on."""
    lws = obj(
        "leaderworkerset.x-k8s.io/v1",
        "LeaderWorkerSet",
        engine.deployment,
        namespace,
        COMPONENT,
        engine.name,
    )
    lws["metadata"]["annotations"] = {
        "llmhost.dev/model": engine.model,
        "llmhost.dev/weights-revision": engine.weights.label,
    }
    capacity: Capacity | None = "spot" if engine.spot else None
    labels = dict(lws["metadata"]["labels"])
    lws["spec"] = {
        "replicas": engine.min_replicas,
        # Workers start with the leader: it becomes ready only once they have joined its Ray
        # cluster, so waiting for a ready leader (LeaderReady) would never start them.
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "leaderWorkerTemplate": {
            "size": engine.pods_per_replica,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": {
                "metadata": {"labels": {**labels, ROLE: "leader"}},
                "spec": pod_spec(engine, image, options, "leader", capacity),
            },
            "workerTemplate": {
                "metadata": {"labels": {**labels, ROLE: "worker"}},
                "spec": pod_spec(engine, image, options, "worker", capacity),
            },
        },
    }
    return lws


def service(engine: EngineDeployment, namespace: str) -> dict[str, Any]:
    """Headless Service: its EndpointSlices list each ready engine pod for the gateway."""
    svc = obj("v1", "Service", engine.deployment, namespace, COMPONENT, engine.name)
    pods = selector(COMPONENT, engine.name)
    if engine.multi_node:  # only the leader of each group serves the API
        pods[ROLE] = "leader"
    svc["spec"] = {
        "clusterIP": "None",
        "selector": pods,
        "ports": [
            {"name": "http", "port": engine.launch.port, "targetPort": "http", "protocol": "TCP"}
        ],
        "publishNotReadyAddresses": False,
    }
    return svc


def disruption_budget(engine: EngineDeployment, namespace: str) -> dict[str, Any]:
    """At most one engine replica out at a time through drains and consolidation."""
    pdb = obj(
        "policy/v1", "PodDisruptionBudget", engine.deployment, namespace, COMPONENT, engine.name
    )
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


def shm_gib(engine: EngineDeployment) -> int:
    """The memory-backed /dev/shm of a vLLM pod (NCCL, and Ray's object store across nodes);
    0 for other engines."""
    return max(1, engine.gpus_per_pod) * SHM_PER_GPU_GIB if engine.engine == "vllm" else 0


def _resources(engine: EngineDeployment) -> dict[str, Any]:
    """Requests and limits. Pages in a memory-backed /dev/shm count against the container's
    memory limit, so the limit leaves room for a full /dev/shm on top of the engine's own."""
    requests: dict[str, Any] = {"cpu": str(engine.cpu), "memory": f"{engine.memory_gib}Gi"}
    limits: dict[str, Any] = {"memory": f"{engine.memory_gib * 2 + shm_gib(engine)}Gi"}
    if engine.gpus:
        requests[GPU_RESOURCE] = engine.gpus_per_pod
        limits[GPU_RESOURCE] = engine.gpus_per_pod
    return {"requests": requests, "limits": limits}


def _spread(key: str, name: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector(COMPONENT, name)},
    }
