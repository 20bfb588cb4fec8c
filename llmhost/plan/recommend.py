"""From requirements to a `Plan`: every candidate configuration, and the cheapest that works.

For each GPU type and weight format the engine can run there, the planner finds the smallest
tensor-parallel degree (1, 2, 4, 8 within a node) and then pipeline stages across nodes that fit
one sequence of the requested context, estimates its speed and cost, sizes the replica count for
the traffic, and checks the latency targets. The recommendation is the cheapest candidate that
fits and meets every target; the runners-up say why they lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.errors import UsageError
from llmhost.plan import cost, memory
from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog import GIB, Catalog, EngineProfile, Gpu, WeightFormat
from llmhost.plan.sources import ModelSource
from llmhost.plan.speed import Hardware, decode_step_seconds, estimate_speed
from llmhost.plan.types import Candidate, MemoryBreakdown, Plan, Requirements, Shape

TENSOR_PARALLEL = (1, 2, 4, 8)
MAX_NODES = 4
# Replicas are sized so that peak traffic keeps each one at most this busy.
SIZING_HEADROOM = 0.8
CPU_FORMATS = ("q4_k_m", "q5_k_m", "q8_0", "bf16")


@dataclass(frozen=True)
class Option:
    """One GPU type and weight format to evaluate for a model and its requirements."""

    source: ModelSource
    gpu: Gpu
    fmt: WeightFormat
    engine: EngineProfile
    catalog: Catalog
    req: Requirements

    def parts(
        self,
    ) -> tuple[ModelSource, Gpu, WeightFormat, EngineProfile, Catalog, Requirements]:
        """The fields in declaration order, for unpacking."""
        return self.source, self.gpu, self.fmt, self.engine, self.catalog, self.req


ASSUMPTIONS = [
    "Traffic: tokens/day split into requests of prompt_tokens + output_tokens; peak = "
    "peak_to_mean x mean; replicas sized to run at most 80% busy at peak.",
    "vLLM memory: gpu_memory_utilization x device memory, less weights, the activation peak at "
    "max_num_batched_tokens, non-torch memory (CUDA context, NCCL) and the CUDA-graph pool.",
    "Speed: roofline per decode step with the engine profile's bandwidth and compute "
    "efficiencies (engines.yaml); prefill is compute-bound.",
    "Cost: cheapest listed provider for each GPU (prices.yaml, dated); 730 hours a month; "
    "control plane and weights volume included.",
]


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def _formats_for(gpu: Gpu, catalog: Catalog, req: Requirements) -> list[WeightFormat]:
    if req.quantizations:
        return [catalog.format(q) for q in req.quantizations]
    ids = CPU_FORMATS if gpu.is_cpu else gpu.vllm_formats
    return [catalog.formats[f] for f in ids if f != "fp32"]


def _engine_for(gpu: Gpu, fmt: WeightFormat, catalog: Catalog) -> EngineProfile | None:
    if gpu.is_cpu:
        return catalog.engines["llamacpp"] if "llamacpp" in fmt.engines else None
    if fmt.id in gpu.vllm_formats:
        return catalog.engines["vllm"]
    return None


def _weights(source: ModelSource, fmt: WeightFormat, catalog: Catalog) -> int:
    if source.file_weights_bytes is not None and source.file_format == fmt.id:
        return source.file_weights_bytes
    return memory.weights_bytes(source.spec, fmt, catalog)


def _unsupported(gpu: Gpu, fmt: WeightFormat, weights: int) -> Candidate:
    where = "llama.cpp on the CPU" if gpu.is_cpu else f"vLLM on {gpu.id}"
    why = f"{where} cannot run {fmt.id} weights"
    if fmt.id == "bf16" and not gpu.has_bf16 and not gpu.is_cpu:
        why += f" ({gpu.id} has no BF16; use fp16)"
    elif fmt.id == "fp8" and not gpu.is_cpu:
        why += f" (compute capability {gpu.compute_capability})"
    return _empty(gpu, fmt, "none", weights, [why])


def _empty(gpu: Gpu, fmt: WeightFormat, engine: str, weights: int, reasons: list[str]) -> Candidate:
    return Candidate(
        gpu=gpu.id,
        gpu_count=0,
        quantization=fmt.id,
        engine=engine,
        fits=False,
        weights_bytes=weights,
        max_kv_tokens=0,
        max_concurrent_sequences=0,
        decode_tokens_per_s_single=0.0,
        decode_tokens_per_s_aggregate=0.0,
        hourly_cost_usd=None,
        monthly_cost_usd=None,
        cost_per_million_output_tokens_usd=None,
        reasons=reasons,
        meets_targets=False,
    )


def _vllm_fit(
    spec: ModelSpec,
    weights: int,
    gpu: Gpu,
    engine: EngineProfile,
    req: Requirements,
    gpu_count: int | None,
) -> tuple[int, int, memory.VllmMemory]:
    """Smallest (tp, pp) that fits, or the largest tried with its shortfall."""
    shapes = [(tp, 1) for tp in TENSOR_PARALLEL if spec.attention_heads % tp == 0]
    shapes += [(8, pp) for pp in range(2, MAX_NODES + 1) if spec.layers >= pp]
    if gpu_count:
        shapes = [(tp, pp) for tp, pp in shapes if tp * pp == gpu_count]
        if not shapes:
            raise UsageError(f"--gpu-count {gpu_count}: use 1, 2, 4, 8 or a multiple of 8")
    last = None
    for tp, pp in shapes:
        mem = memory.vllm_memory(spec, weights, gpu, engine, tp, pp, req.context)
        if mem.fits:
            return tp, pp, mem
        last = (tp, pp, mem)
    assert last is not None
    return last


def _offload_note(weights_short: int, engine: EngineProfile, step_s: float) -> str:
    tps = 1 / (weights_short / (engine.offload_link_gbs * 1e9) + step_s)
    return (
        f"offloading {_gib(weights_short)} of weights to host RAM would decode at about "
        f"{tps:.1f} tokens/s per GPU group (PCIe {engine.offload_link_gbs:g} GB/s): "
        "infeasible for serving"
    )


def _gpu_candidate(opt: Option, gpu_count: int | None) -> Candidate:
    source, gpu, fmt, engine, catalog, req = opt.parts()
    spec = source.spec
    weights = _weights(source, fmt, catalog)
    tp, pp, mem = _vllm_fit(spec, weights, gpu, engine, req, gpu_count)
    gpus = tp * pp
    breakdown = MemoryBreakdown(
        device_bytes=gpu.memory_bytes,
        budget_bytes=mem.budget,
        weights_bytes=mem.weights,
        kv_cache_bytes=max(mem.kv_available, 0),
        overhead_bytes=mem.activation_peak + mem.non_torch + mem.cuda_graphs,
        per_sequence_kv_bytes=mem.per_sequence_kv,
        shortfall_bytes=mem.shortfall,
    )
    hw = Hardware(gpu, engine, tp, pp)
    if not mem.fits:
        step = decode_step_seconds(spec, fmt, catalog, hw, 1, req.context)
        reasons = [
            f"does not fit on {gpus}x {gpu.id}: short by {_gib(mem.shortfall)} per GPU "
            f"(weights {_gib(mem.weights)} + overhead {_gib(breakdown.overhead_bytes)} + one "
            f"{req.context}-token sequence {_gib(mem.per_sequence_kv)} > budget "
            f"{_gib(mem.budget)})",
        ]
        if engine.offload_link_gbs:
            reasons.append(_offload_note(mem.shortfall * gpus, engine, step))
        cand = _empty(gpu, fmt, engine.id, weights, reasons)
        cand.gpu_count, cand.gpus_per_replica = gpus, gpus
        cand.tensor_parallel, cand.pipeline_parallel, cand.memory = tp, pp, breakdown
        return cand
    return _finish(
        opt,
        hw,
        weights,
        breakdown,
        kv_tokens=mem.kv_tokens,
        concurrent=mem.max_concurrent_sequences,
        reasons=[
            f"fits on {gpus}x {gpu.id} (TP {tp}"
            + (f", PP {pp} nodes" if pp > 1 else "")
            + f"): {_gib(mem.kv_available)} per GPU left for KV cache",
        ],
    )


def _cpu_candidate(opt: Option) -> Candidate:
    source, gpu, fmt, engine, catalog, req = opt.parts()
    spec = source.spec
    weights = _weights(source, fmt, catalog)
    budget = memory.host_memory_budget(gpu)
    one = memory.llamacpp_memory(spec, weights, engine, req.context, 1)
    per_slot = one.kv + one.output
    fixed = one.weights + one.compute
    slots = max(0, (budget - fixed) // per_slot) if per_slot else 0
    breakdown = MemoryBreakdown(
        device_bytes=gpu.memory_bytes,
        budget_bytes=budget,
        weights_bytes=weights,
        kv_cache_bytes=int(slots * one.kv),
        overhead_bytes=one.compute + one.output,
        per_sequence_kv_bytes=one.kv,
        shortfall_bytes=max(0, one.total - budget),
    )
    if slots < 1:
        reason = (
            f"does not fit in this host's memory: needs {_gib(one.total)}, "
            f"{_gib(budget)} usable (short by {_gib(one.total - budget)})"
        )
        cand = _empty(gpu, fmt, engine.id, weights, [reason])
        cand.gpu_count, cand.memory = 1, breakdown
        return cand
    return _finish(
        opt,
        Hardware(gpu, engine),
        weights,
        breakdown,
        kv_tokens=int(slots * req.context),
        concurrent=int(slots),
        reasons=[f"fits in host RAM: {int(slots)} slots of {req.context} tokens"],
    )


def _required_rps(req: Requirements) -> float:
    if req.requests_per_s is not None:
        return req.requests_per_s
    if req.tokens_per_day:
        per_request = req.prompt_tokens + req.output_tokens
        return req.tokens_per_day / per_request / 86400 * req.peak_to_mean
    return 0.0


def _finish(
    opt: Option,
    hw: Hardware,
    weights: int,
    breakdown: MemoryBreakdown,
    kv_tokens: int,
    concurrent: int,
    reasons: list[str],
) -> Candidate:
    """Speed, replicas, cost and target checks for a configuration that fits."""
    source, gpu, fmt, engine, catalog, req = opt.parts()
    spec = source.spec
    speed = estimate_speed(
        spec,
        fmt,
        catalog,
        hw,
        min(concurrent, engine.max_num_seqs),
        req.prompt_tokens,
        req.output_tokens,
        req.min_user_tokens_per_s,
    )
    seconds_per_request = (
        req.output_tokens / speed.decode_tokens_per_s_aggregate
        + req.prompt_tokens / speed.prefill_tokens_per_s
    )
    capacity = 1 / seconds_per_request
    replicas = max(1, math.ceil(_required_rps(req) / (capacity * SIZING_HEADROOM)))
    per_replica = hw.tensor_parallel * hw.pipeline_parallel
    meets = True
    if req.ttft_s is not None and speed.ttft_s > req.ttft_s:
        meets = False
        reasons.append(f"TTFT {speed.ttft_s:.2f} s misses the {req.ttft_s:g} s target")
    if speed.decode_tokens_per_s_single < req.min_user_tokens_per_s:
        meets = False
        reasons.append(
            f"{speed.decode_tokens_per_s_single:.1f} tokens/s per user even alone misses the "
            f"{req.min_user_tokens_per_s:g} tokens/s target"
        )
    cand = Candidate(
        gpu=gpu.id,
        gpu_count=per_replica * replicas,
        quantization=fmt.id,
        engine=engine.id,
        fits=True,
        weights_bytes=weights,
        max_kv_tokens=kv_tokens,
        max_concurrent_sequences=concurrent,
        decode_tokens_per_s_single=round(speed.decode_tokens_per_s_single, 2),
        decode_tokens_per_s_aggregate=round(speed.decode_tokens_per_s_aggregate, 2),
        hourly_cost_usd=None,
        monthly_cost_usd=None,
        cost_per_million_output_tokens_usd=None,
        reasons=reasons,
        tensor_parallel=hw.tensor_parallel,
        pipeline_parallel=hw.pipeline_parallel,
        replicas=replicas,
        gpus_per_replica=per_replica,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        memory=breakdown,
        operating_batch=speed.batch,
        per_user_tokens_per_s=round(speed.per_user_tokens_per_s, 2),
        prefill_tokens_per_s=round(speed.prefill_tokens_per_s, 1),
        ttft_s=round(speed.ttft_s, 4),
        requests_per_s_capacity=round(capacity, 4),
        load_time_s=round(engine.startup_s + weights / (engine.load_gbps * 1e9), 1),
        meets_targets=meets,
        shape=Shape(tp=hw.tensor_parallel, pp=hw.pipeline_parallel),
    )
    if replicas > 1:
        reasons.append(f"{replicas} replicas for {_required_rps(req):.2f} req/s at peak")
    _price(cand, catalog, req, spec)
    return cand


def _price(cand: Candidate, catalog: Catalog, req: Requirements, spec: ModelSpec) -> None:
    choice = cost.choose_price(catalog, cand.gpu, req.spot, req.provider)
    if choice is None:
        where = f" from {req.provider}" if req.provider else ""
        cand.reasons.append(f"no price for {cand.gpu}{where} in the catalog")
        return
    if req.spot and not choice.spot:
        cand.reasons.append(f"no spot price listed for {cand.gpu}; costed on-demand")
    costs = cost.deployment_cost(
        catalog, choice, cand.gpu_count, cand.weights_bytes, req.active_hours
    )
    cand.provider, cand.spot = choice.provider, choice.spot
    cand.price_per_gpu_hour_usd = choice.per_gpu_hour
    cand.hourly_cost_usd = round(costs.hourly, 4)
    cand.monthly_cost_usd = round(costs.monthly, 2)
    cand.monthly_cost_24x7_usd = round(costs.monthly_24x7, 2)
    cand.control_plane_monthly_usd = round(costs.control_plane_monthly, 2)
    cand.storage_monthly_usd = round(costs.storage_monthly, 2)
    per_m = cost.cost_per_million_output_tokens(
        costs.hourly / cand.replicas, cand.decode_tokens_per_s_aggregate, req.utilization
    )
    cand.cost_per_million_output_tokens_usd = round(per_m, 4) if per_m is not None else None
    input_share = req.prompt_tokens / (req.prompt_tokens + req.output_tokens)
    cand.hosted = cost.compare_hosted(
        catalog, spec.id, costs.monthly, input_share, req.tokens_per_day
    )


def _rank_key(c: Candidate) -> tuple[float, float, float]:
    """Cheapest first; at equal cost the higher throughput, then the faster single stream."""
    return (
        c.monthly_cost_usd if c.monthly_cost_usd is not None else math.inf,
        -c.decode_tokens_per_s_aggregate,
        -c.decode_tokens_per_s_single,
    )


def _why_lost(c: Candidate, best: Candidate) -> str:
    label = f"{c.gpu_count}x {c.gpu} {c.quantization}"
    if not c.fits or not c.meets_targets or c.monthly_cost_usd is None:
        return f"{label}: {c.reasons[-1]}"
    extra = c.monthly_cost_usd - (best.monthly_cost_usd or 0)
    if extra < 0.5 and c.decode_tokens_per_s_single >= best.decode_tokens_per_s_single:
        return f"{label}: same cost and speed (ties broken by order)"
    if extra < 0.5:
        return (
            f"{label}: same cost, slower ({c.decode_tokens_per_s_single:,.1f} vs "
            f"{best.decode_tokens_per_s_single:,.1f} tokens/s per user)"
        )
    pct = extra / best.monthly_cost_usd * 100 if best.monthly_cost_usd else 0
    return f"{label}: ${extra:,.0f}/month more (+{pct:.0f}%)"


def build_plan(
    source: ModelSource,
    req: Requirements,
    catalog: Catalog,
    gpus: list[Gpu],
    gpu_count: int | None = None,
) -> Plan:
    """Every candidate for `source` on `gpus`, and the recommendation."""
    spec = source.spec
    if req.context > spec.max_context:
        raise UsageError(f"--context {req.context} exceeds {spec.id}'s maximum {spec.max_context}")
    floor = catalog.format(req.min_precision).precision_rank if req.min_precision else 0
    candidates: list[Candidate] = []
    for gpu in gpus:
        for fmt in _formats_for(gpu, catalog, req):
            if fmt.precision_rank < floor:
                continue
            engine = _engine_for(gpu, fmt, catalog)
            if engine is None:
                candidates.append(_unsupported(gpu, fmt, _weights(source, fmt, catalog)))
            elif gpu.is_cpu:
                candidates.append(_cpu_candidate(Option(source, gpu, fmt, engine, catalog, req)))
            else:
                opt = Option(source, gpu, fmt, engine, catalog, req)
                candidates.append(_gpu_candidate(opt, gpu_count))
    if not candidates:
        raise UsageError(f"no weight format is at least as precise as {req.min_precision}")
    viable = sorted(
        (c for c in candidates if c.fits and c.meets_targets and c.monthly_cost_usd is not None),
        key=_rank_key,
    )
    best = viable[0] if viable else None
    if best:
        reason = (
            f"cheapest configuration that fits and meets the targets: {best.gpu_count}x "
            f"{best.gpu} with {best.quantization} on {best.engine} at "
            f"${best.monthly_cost_usd:,.0f}/month"
        )
        others = viable[1:4] + [c for c in candidates if c not in viable][:3]
        alternatives = [_why_lost(c, best) for c in others]
    else:
        fitting = [c for c in candidates if c.fits]
        if not fitting:
            reason = "nothing fits: " + "; ".join(sorted({c.reasons[0] for c in candidates})[:3])
        else:
            reason = "nothing meets the targets: " + "; ".join(
                sorted({c.reasons[-1] for c in fitting})[:3]
            )
        alternatives = []
    kv_dtype = catalog.engines["vllm"].kv_dtype_bytes
    default_fmt = catalog.formats[best.quantization] if best else catalog.formats["bf16"]
    return Plan(
        model=spec.id,
        total_params=spec.total_params,
        active_params=spec.active_params,
        weights_bytes=best.weights_bytes if best else _weights(source, default_fmt, catalog),
        kv_bytes_per_token=memory.kv_bytes_per_token(spec, kv_dtype),
        kv_bytes_per_sequence=memory.kv_bytes_per_sequence(spec, req.context, kv_dtype),
        requirements=req,
        candidates=candidates,
        recommendation=best,
        recommendation_reason=reason,
        alternatives=alternatives,
        model_source=str(source.path) if source.path else "catalog",
        architecture={
            "layers": spec.layers,
            "hidden_size": spec.hidden_size,
            "attention_heads": spec.attention_heads,
            "kv_heads": spec.kv_heads,
            "head_dim": spec.head_dim,
            "sliding_window": spec.sliding_window,
            "local_layers": spec.local_layers,
            "global_layers": spec.global_layers,
            "experts": spec.experts,
            "experts_per_token": spec.experts_per_token,
            "max_context": spec.max_context,
        },
        assumptions=ASSUMPTIONS,
    )
