"""Manifests a real GPU cluster runs as the plan priced them (issue 15): pods never larger than a
node, spot plans on spot nodes, a drain sized to the longest request, a new weights revision as
a new download, replica bounds honoured everywhere, and the engine settings the plan assumed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmhost.deploy.catalog import DeployError
from llmhost.deploy.kubernetes import render
from llmhost.deploy.model import from_plan
from llmhost.plan import Plan
from llmhost.plan.catalog import load_catalog
from llmhost.plan.types import EngineArgs
from tests.deploy.cases import CASES, GOLDEN
from tests.deploy.test_render import flags, validate

GEMMA, LLAMA_70B, CPU, LLAMA_405B = CASES


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def pods(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod spec an engine workload creates."""
    found = []
    for o in objects:
        if o["kind"] == "Deployment" and o["metadata"]["name"].startswith("engine-"):
            found.append(o["spec"]["template"]["spec"])
        if o["kind"] == "LeaderWorkerSet":
            template = o["spec"]["leaderWorkerTemplate"]
            found += [template["leaderTemplate"]["spec"], template["workerTemplate"]["spec"]]
    return found


def gpus(pod: dict[str, Any]) -> int:
    return int(pod["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0))


def test_a_plan_across_nodes_renders_a_leader_worker_set() -> None:
    plan = LLAMA_405B.plan
    assert plan.recommendation is not None and plan.recommendation.gpus_per_replica == 16
    objects = by_key(render([plan], LLAMA_405B.options))
    assert ("Deployment", "engine-llama-3-1-405b") not in objects
    lws = objects[("LeaderWorkerSet", "engine-llama-3-1-405b")]
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2 and template["restartPolicy"] == "RecreateGroupOnPodRestart"
    # The leader is ready only after the workers joined it: they must not wait for its readiness.
    assert lws["spec"]["startupPolicy"] == "LeaderCreated"
    per_node = load_catalog().gpus_per_node("h100-80gb", "gcp")
    leader, worker = template["leaderTemplate"], template["workerTemplate"]
    for pod in (leader["spec"], worker["spec"]):
        assert 0 < gpus(pod) <= per_node  # no pod asks for more GPUs than a node holds
        assert {"name": "shm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]
        # A full /dev/shm counts as the container's memory: the limit leaves room for it.
        shm = next(v for v in pod["volumes"] if v["name"] == "shm")["emptyDir"]["sizeLimit"]
        resources = pod["containers"][0]["resources"]
        limit, request = (
            int(resources[k]["memory"].removesuffix("Gi")) for k in ("limits", "requests")
        )
        assert limit >= request + int(shm.removesuffix("Gi"))
    script = leader["spec"]["containers"][0]["command"][2]
    assert "multi-node-serving.sh leader --ray_cluster_size=$(LWS_GROUP_SIZE)" in script
    serve = flags(script.split("exec ", 1)[1].split())
    assert serve["--tensor-parallel-size"] == "8" and serve["--pipeline-parallel-size"] == "2"
    assert serve["--distributed-executor-backend"] == "ray"
    assert "--ray_address=$(LWS_LEADER_ADDRESS)" in worker["spec"]["containers"][0]["command"][2]
    # Readiness (and the API) on the leader only; the Service selects leaders.
    assert "readinessProbe" in leader["spec"]["containers"][0]
    assert "readinessProbe" not in worker["spec"]["containers"][0]
    service = objects[("Service", "engine-llama-3-1-405b")]["spec"]["selector"]
    assert service["llmhost.dev/role"] == "leader"
    assert leader["metadata"]["labels"]["llmhost.dev/role"] == "leader"
    # Ray and NCCL between the group's pods are allowed, on any port.
    policy = objects[("NetworkPolicy", "engine-llama-3-1-405b")]["spec"]
    group = {"podSelector": policy["podSelector"]}
    assert {"from": [group]} in policy["ingress"] and {"to": [group]} in policy["egress"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_engine_pod_asks_for_more_gpus_than_a_node_holds(case: Any) -> None:
    plan = case.plan
    engine = from_plan(plan, case.options)
    for pod in pods(render([plan], case.options)):
        assert gpus(pod) <= engine.gpus_per_node


def test_tensor_parallel_wider_than_a_node_without_engine_args_splits_into_stages() -> None:
    plan = LLAMA_405B.plan
    chosen = plan.recommendation
    assert chosen is not None
    chosen.shape.tp, chosen.shape.pp = 16, 1  # a plan that says TP 16, one stage
    engine = from_plan(plan, LLAMA_405B.options)
    assert (engine.tensor_parallel, engine.pipeline_parallel, engine.pods_per_replica) == (8, 2, 2)


def test_a_gke_spot_plan_selects_and_tolerates_spot_nodes() -> None:
    objects = render([LLAMA_405B.plan], LLAMA_405B.options)
    for pod in pods(objects):
        assert pod["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
        assert {
            "key": "cloud.google.com/gke-spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        } in pod["tolerations"]
    # Not spot: no spot selector.
    gemma = pods(render([GEMMA.plan], GEMMA.options))[0]
    assert "cloud.google.com/gke-spot" not in gemma["nodeSelector"]


def test_on_demand_base_keeps_replicas_off_spot() -> None:
    options = dataclasses.replace(LLAMA_70B.options, on_demand_base=1, max_replicas=3)
    objects = by_key(render([LLAMA_70B.plan], options))
    base = objects[("Deployment", "engine-llama-3-1-70b-on-demand")]
    spot = objects[("Deployment", "engine-llama-3-1-70b")]
    assert base["spec"]["replicas"] == 1 and "replicas" not in spot["spec"]
    assert base["spec"]["template"]["spec"]["nodeSelector"]["karpenter.sh/capacity-type"] == (
        "on-demand"
    )
    # Selectors must not overlap; the Service reaches both.
    assert base["spec"]["selector"] != spot["spec"]["selector"]
    service = objects[("Service", "engine-llama-3-1-70b")]["spec"]["selector"]
    for dep in (base, spot):
        assert service.items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    scaled = objects[("ScaledObject", "engine-llama-3-1-70b")]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (0, 2)  # 3 less the base
    for item in objects.values():
        validate(item)
    # GKE: the base keeps off nodes that carry the spot label.
    gke = by_key(
        render(
            [Plan.from_json(_single_node_gke_spot())],
            dataclasses.replace(LLAMA_405B.options, on_demand_base=1),
        )
    )
    affinity = gke[("Deployment", "engine-llama-3-1-70b-on-demand")]["spec"]["template"]["spec"][
        "affinity"
    ]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "cloud.google.com/gke-spot", "operator": "DoesNotExist"}
    ]


def _single_node_gke_spot() -> str:
    """The 70B spot plan, priced on GCP."""
    data = yaml.safe_load(LLAMA_70B.plan.to_json())
    data["recommendation"]["provider"] = "gcp"
    return Plan.from_dict(data).to_json()


def test_spot_on_a_generic_cluster_needs_its_labels() -> None:
    options = dataclasses.replace(LLAMA_70B.options, provider="generic")
    with pytest.raises(DeployError, match="--spot-label KEY=VALUE"):
        render([LLAMA_70B.plan], options)
    options = dataclasses.replace(
        options,
        spot_labels=(("node.example.com/lifecycle", "spot"),),
        spot_tolerations=(("node.example.com/spot", "true", "NoSchedule"),),
        node_labels=(("pool", "gpu"),),
    )
    pod = pods(render([LLAMA_70B.plan], options))[0]
    assert pod["nodeSelector"]["node.example.com/lifecycle"] == "spot"
    assert pod["nodeSelector"]["pool"] == "gpu"
    assert {
        "key": "node.example.com/spot",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    } in pod["tolerations"]


def test_the_drain_covers_the_longest_request_and_the_grace_period_covers_the_drain() -> None:
    plan = LLAMA_70B.plan
    chosen = plan.recommendation
    assert chosen is not None
    engine = from_plan(plan, LLAMA_70B.options)
    # 0.09 s to the first token + 4 x 256 tokens at 49.1 tokens/s per user.
    assert engine.drain_s == 21
    pod = pods(render([plan], LLAMA_70B.options))[0]
    stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert stop >= engine.drain_s and pod["terminationGracePeriodSeconds"] > stop
    pdb = by_key(render([plan], LLAMA_70B.options))[("PodDisruptionBudget", "engine-llama-3-1-70b")]
    assert pdb["spec"]["maxUnavailable"] == 1
    longer = dataclasses.replace(LLAMA_70B.options, drain_s=300)
    pod = pods(render([plan], longer))[0]
    assert pod["terminationGracePeriodSeconds"] >= 300 + 10


def test_a_new_weights_revision_is_a_new_download_and_a_rolling_update() -> None:
    old = by_key(render([GEMMA.plan], GEMMA.options))
    pinned = dataclasses.replace(GEMMA.options, weights="gaunernst/gemma-3-12b-it-int4-awq@r2")
    new = by_key(render([GEMMA.plan], pinned))
    assert ("Job", "download-gemma-3-12b-main") in old
    job = new[("Job", "download-gemma-3-12b-r2")]  # Jobs are immutable: a new name
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "revision='r2'" in script
    assert "touch /models/gaunernst-gemma-3-12b-it-int4-awq/r2/.llmhost-complete" in script
    dep = new[("Deployment", "engine-gemma-3-12b")]
    wait = dep["spec"]["template"]["spec"]["initContainers"][0]["command"][2]
    assert "/models/gaunernst-gemma-3-12b-it-int4-awq/r2/.llmhost-complete" in wait
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    # The pod template changed, so the Deployment rolls; the old revision's path is untouched.
    old_dep = old[("Deployment", "engine-gemma-3-12b")]
    assert old_dep["spec"]["template"] != dep["spec"]["template"]
    assert "/main/" in old_dep["spec"]["template"]["spec"]["initContainers"][0]["command"][2]


def test_replica_bounds_reach_hpa_keda_and_the_gateway() -> None:
    production = dataclasses.replace(LLAMA_70B.options, production=True, scale_to_zero=False)
    objects = by_key(render([LLAMA_70B.plan], production))
    scaled = objects[("ScaledObject", "engine-llama-3-1-70b")]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 2)  # N=1: N+1
    explicit = dataclasses.replace(GEMMA.options, min_replicas=0, max_replicas=5)
    objects = by_key(render([GEMMA.plan], explicit))
    config = yaml.safe_load(objects[("ConfigMap", "llmhost-config")]["data"]["llmhost.yaml"])
    model = config["models"][0]
    assert (model["min_replicas"], model["max_replicas"]) == (0, 5)
    assert config["server"]["scaler_lease"] == "llmhost-scaler"
    with pytest.raises(DeployError, match="--min-replicas 4 is more than --max-replicas 2"):
        render(
            [GEMMA.plan],
            dataclasses.replace(GEMMA.options, scale_to_zero=False, min_replicas=4, max_replicas=2),
        )


def test_engine_args_from_the_plan_are_written_exactly() -> None:
    plan = LLAMA_70B.plan
    chosen = plan.recommendation
    assert chosen is not None
    chosen.engine_args = EngineArgs(
        max_num_seqs=48,
        max_num_batched_tokens=4096,
        max_model_len=16384,
        kv_cache_dtype="fp8",
        tensor_parallel_size=2,
        pipeline_parallel_size=1,
        enable_expert_parallel=False,
        gpu_memory_utilization=0.92,
    )
    args = flags(pods(render([plan], LLAMA_70B.options))[0]["containers"][0]["args"])
    assert args["--max-num-seqs"] == "48" and args["--max-num-batched-tokens"] == "4096"
    assert args["--max-model-len"] == "16384" and args["--kv-cache-dtype"] == "fp8"
    assert args["--tensor-parallel-size"] == "2" and args["--gpu-memory-utilization"] == "0.92"
    assert "--pipeline-parallel-size" not in args  # one stage: vLLM's default
    # A single sequence would turn batching off where the plan has room for 28.
    chosen.engine_args = dataclasses.replace(chosen.engine_args, max_num_seqs=1)
    args = flags(pods(render([plan], LLAMA_70B.options))[0]["containers"][0]["args"])
    assert args["--max-num-seqs"] == "28"


def test_gateway_roles_hold_the_scaler_lease() -> None:
    rules = by_key(render([GEMMA.plan], GEMMA.options))[("Role", "llmhost-gateway")]["rules"]
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    } in rules


def test_tls_renders_a_certificate_and_switches_turn_parts_off() -> None:
    objects = by_key(render([LLAMA_405B.plan], LLAMA_405B.options))
    cert = objects[("Certificate", "llmhost-gateway")]["spec"]
    assert cert["dnsNames"] == ["llm.example.com"] and cert["issuerRef"]["name"] == "letsencrypt"
    ingress = objects[("Ingress", "llmhost-gateway")]["spec"]
    assert ingress["tls"][0]["secretName"] == cert["secretName"]
    alerts = {
        r["alert"]
        for g in objects[("PrometheusRule", "llmhost")]["spec"]["groups"]
        for r in g["rules"]
    }
    assert "LlmhostCertificateExpiring" in alerts
    bare = dataclasses.replace(
        LLAMA_405B.options, monitoring=False, network_policies=False, tls=False
    )
    kinds = {o["kind"] for o in render([LLAMA_405B.plan], bare)}
    assert not kinds & {
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "Certificate",
    }


def test_gateway_api_renders_an_inference_pool_and_a_route() -> None:
    options = dataclasses.replace(LLAMA_405B.options, gateway_api=True)
    objects = by_key(render([LLAMA_405B.plan], options))
    pool = objects[("InferencePool", "engine-llama-3-1-405b")]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    assert pool["spec"]["selector"]["matchLabels"]["llmhost.dev/role"] == "leader"
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    route = objects[("HTTPRoute", "llmhost-gateway")]["spec"]
    assert route["rules"][0]["backendRefs"] == [
        {"kind": "Service", "name": "llmhost-gateway", "port": 80}
    ]
    for item in objects.values():
        validate(item)


def test_gpu_telemetry_scrapes_dcgm_and_charts_the_gpus() -> None:
    objects = by_key(render([GEMMA.plan], GEMMA.options))
    monitor = objects[("ServiceMonitor", "llmhost-dcgm")]["spec"]
    assert monitor["namespaceSelector"] == {"matchNames": ["gpu-operator"]}
    assert monitor["selector"] == {"matchLabels": {"app": "nvidia-dcgm-exporter"}}
    pod = by_key(render([GEMMA.plan], dataclasses.replace(GEMMA.options, dcgm_monitor="pod")))
    assert ("PodMonitor", "llmhost-dcgm") in pod and ("ServiceMonitor", "llmhost-dcgm") not in pod
    dashboard = yaml.safe_load(objects[("ConfigMap", "llmhost-dashboard")]["data"]["llmhost.json"])
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    ):
        assert metric in exprs
    off = by_key(render([GEMMA.plan], dataclasses.replace(GEMMA.options, gpu_monitoring=False)))
    assert ("ServiceMonitor", "llmhost-dcgm") not in off
    cpu = by_key(render([CPU.plan], CPU.options))  # no GPUs: nothing to scrape
    assert ("ServiceMonitor", "llmhost-dcgm") not in cpu


def test_llama_cpp_takes_slots_and_context_from_the_engine_args() -> None:
    plan = CPU.plan
    chosen = plan.recommendation
    assert chosen is not None
    chosen.engine_args = EngineArgs(max_num_seqs=4, max_num_batched_tokens=2048, max_model_len=4096)
    args = flags(pods(render([plan], CPU.options))[0]["containers"][0]["args"])
    assert args["--parallel"] == "4" and args["--ctx-size"] == str(4 * 4096)


def test_render_cli_takes_the_new_options_and_refuses_bad_ones(tmp_path: Path) -> None:
    plan = GOLDEN / "plans" / LLAMA_70B.plan_file
    run = [sys.executable, "-m", "llmhost", "render", str(plan)]
    out = tmp_path / "k8s"
    done = subprocess.run(
        [
            *run,
            "--out",
            str(out),
            "--production",
            "--on-demand-base",
            "1",
            "--gateway-api",
            "--no-monitoring",
            "--provider",
            "generic",
            "--spot-label",
            "lifecycle=spot",
            "--spot-toleration",
            "spot=true:NoSchedule",
            "--ingress-host",
            "llm.example.com",
            "--ingress-class",
            "traefik",
            "--drain",
            "90",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    files = {p.name for p in out.iterdir()}
    assert {"inference-pool.yaml", "http-route.yaml", "certificate.yaml"} <= files
    assert "prometheus-rule.yaml" not in files
    deployments = list(yaml.safe_load_all((out / "deployment.yaml").read_text()))
    names = {d["metadata"]["name"] for d in deployments}
    assert {"engine-llama-3-1-70b", "engine-llama-3-1-70b-on-demand"} <= names
    ingress = yaml.safe_load((out / "ingress.yaml").read_text())
    assert ingress["spec"]["ingressClassName"] == "traefik"
    for bad, message in (
        (["--spot-toleration", "spot=true"], "end with :EFFECT"),
        (["--node-label", "pool"], "--node-label pool: give KEY=VALUE"),
        (["--dcgm-monitor", "both"], "--dcgm-monitor must be service or pod"),
        (["--on-demand-base", "-1"], "--on-demand-base must be 0 or more"),
    ):
        done = subprocess.run(
            [*run, "--out", str(tmp_path / "x"), *bad], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
