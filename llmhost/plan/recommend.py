"""From requirements to a `Plan`: every candidate configuration, and the cheapest that works.

For each GPU type and weight format the engine can run there, `search` evaluates every shape
(TP within a node, PP across nodes, EP for MoE) that fits one full-context sequence: paged-KV
concurrency, the curve, the operating point, replicas and cost. llama.cpp on the host CPU keeps
its measured whole-model roofline (`speed`). The recommendation is the cheapest candidate that
fits and meets every target; its neighbouring shapes and the runners-up say why they lost.
"""

from __future__ import annotations

import math

from llmhost.errors import UsageError
from llmhost.plan import memory
from llmhost.plan.bill import whole_bill
from llmhost.plan.candidate import (
    Option,
    busy_at_peak,
    empty,
    gib,
    price,
    replicas_for,
    required_rps,
)
from llmhost.plan.catalog import Catalog, EngineProfile, Gpu, WeightFormat
from llmhost.plan.cost import compare_hosted, flag_capacity
from llmhost.plan.growth import fleet_over_time
from llmhost.plan.own import ownership
from llmhost.plan.search import gpu_candidates, shape_label
from llmhost.plan.sources import ModelSource
from llmhost.plan.speed import Hardware, estimate_speed
from llmhost.plan.types import (
    Candidate,
    CurvePoint,
    EngineArgs,
    MemoryBreakdown,
    Plan,
    Requirements,
    Shape,
)

CPU_FORMATS = ("q4_k_m", "q5_k_m", "q8_0", "bf16")
# The CPU is a candidate without --gpu cpu only when one user gets at least this many tokens/s
# (about reading speed); slower, it is listed but never recommended unless asked for.
CPU_UNASKED_MIN_TOKENS_PER_S = 5.0


def _cpu_only_when_asked(cand: Candidate, req: Requirements) -> Candidate:
    floor = max(CPU_UNASKED_MIN_TOKENS_PER_S, req.min_user_tokens_per_s)
    if cand.fits and cand.meets_targets and cand.decode_tokens_per_s_single < floor:
        cand.meets_targets = False
        cand.reasons.append(
            f"the CPU gives {cand.decode_tokens_per_s_single:.1f} tokens/s per user, under the "
            f"{floor:g} tokens/s a CPU needs to be proposed unasked (ask with --gpu cpu)"
        )
    return cand


ASSUMPTIONS = [
    "Traffic: tokens/day split into requests of prompt_tokens + output_tokens; peak = "
    "peak_to_mean x mean (--peak-to-mean, default 2); replicas sized to keep --headroom "
    "(default 30%) free at peak.",
    "vLLM memory: gpu_memory_utilization x device memory, less weights, the activation peak at "
    "max_num_batched_tokens, non-torch memory (CUDA context, NCCL) and the CUDA-graph pool.",
    "vLLM KV cache: paged; concurrency = KV budget / the tokens a request holds on average "
    "(prompt + output / 2), within the GPU class's max_num_seqs; one full-context sequence must "
    "fit.",
    "vLLM speed: per-layer step model (GEMMs with M-dependent efficiency, attention over held "
    "KV, prefill chunks inside decode steps, all-reduce per link type, pipeline hops, per-step "
    "and per-request CPU costs); llama.cpp: whole-model roofline per step.",
    "Cost: the cheapest listed whole node (GPUs + VM) in the allowed price tiers (prices.yaml, "
    "dated), whole nodes billed; 730 hours a month; candidates rank by engine nodes, control "
    "plane and weights volume; the recommendation's whole bill (bill.yaml) adds system nodes, "
    "ReadWriteMany storage, egress and backups, and break-even uses that bill.",
]


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
    return empty(gpu, fmt, "none", weights, [why])


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
            f"does not fit in this host's memory: needs {gib(one.total)}, "
            f"{gib(budget)} usable (short by {gib(one.total - budget)})"
        )
        cand = empty(gpu, fmt, engine.id, weights, [reason])
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
    replicas = replicas_for(required_rps(req), capacity, req)
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
        engine_args=EngineArgs(
            max_num_seqs=max(1, min(concurrent, engine.max_num_seqs)),
            max_num_batched_tokens=engine.n_batch,
            max_model_len=req.context,
            gpu_memory_utilization=engine.gpu_memory_utilization,
        ),
        curve=[
            CurvePoint(
                concurrency=b,
                running=b,
                per_user_tokens_per_s=round(tps / b, 3),
                ttft_s=round(speed.ttft_s, 4),
                aggregate_tokens_per_s=round(tps, 2),
                tpot_s=round(b / tps, 6),
            )
            for b, tps in speed.curve
        ],
    )
    if replicas > 1:
        reasons.append(f"{replicas} replicas for {required_rps(req):.2f} req/s at peak")
    price(cand, catalog, req, spec)
    return cand


def _rank_key(c: Candidate) -> tuple[float, float, float]:
    """Cheapest first; at equal cost the higher throughput, then the faster single stream."""
    return (
        c.monthly_cost_usd if c.monthly_cost_usd is not None else math.inf,
        -c.decode_tokens_per_s_aggregate,
        -c.decode_tokens_per_s_single,
    )


def _label(c: Candidate) -> str:
    if c.engine == "vllm":
        reps = f"{c.replicas} x " if c.replicas > 1 else ""
        return f"{reps}{c.gpus_per_replica}x {c.gpu} {c.quantization} {shape_label(c.shape)}"
    return f"{c.gpu_count}x {c.gpu} {c.quantization}"


def _why_lost(c: Candidate, best: Candidate) -> str:
    label = _label(c)
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
    cpu_asked: bool = True,
) -> Plan:
    """Every candidate for `source` on `gpus`, and the recommendation.

    With `cpu_asked` False (the user named no GPUs), the CPU must also be fast enough to be
    worth proposing (`CPU_UNASKED_MIN_TOKENS_PER_S`).
    """
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
                cand = _cpu_candidate(Option(source, gpu, fmt, engine, catalog, req))
                candidates.append(cand if cpu_asked else _cpu_only_when_asked(cand, req))
            else:
                opt = Option(source, gpu, fmt, engine, catalog, req)
                candidates += gpu_candidates(opt, _weights(source, fmt, catalog), gpu_count)
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
        neighbours = [
            c
            for c in candidates
            if c is not best
            and c.fits
            and c.engine == best.engine
            and c.gpu == best.gpu
            and c.quantization == best.quantization
        ]
        if best.engine == "vllm":
            reason += f" ({best.replicas} x {shape_label(best.shape)}"
            reason += f", batch {best.operating_batch} per replica)"
        rest = [c for c in viable[1:] if c not in neighbours][:3]
        others = neighbours + rest + [c for c in candidates if c not in viable][:3]
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
    bill = whole_bill(catalog, best, req, required_rps(req)) if best else None
    if bill:
        reason += f"; the whole bill with the cluster around it ${bill.monthly_usd:,.0f}/month"
    if best and bill:  # break-even against the whole bill, not the GPUs alone
        share = req.prompt_tokens / (req.prompt_tokens + req.output_tokens)
        best.hosted = compare_hosted(catalog, spec.id, bill.monthly_usd, share, req.tokens_per_day)
    if best:
        full = best.replicas * best.requests_per_s_capacity * 86400
        full *= req.prompt_tokens + req.output_tokens
        flag_capacity(best.hosted, full, busy_at_peak(req) / req.peak_to_mean)
    kv_dtype = 1 if req.kv_cache_dtype == "fp8" else catalog.engines["vllm"].kv_dtype_bytes
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
        model_source=source.origin or (str(source.path) if source.path else "catalog"),
        source_format=source.file_format if source.prequantized else None,
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
        bill=bill,
        growth=fleet_over_time(best, req) if best else [],
        ownership=ownership(catalog, best, req) if best else None,
    )
