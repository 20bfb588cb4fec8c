"""The shape search for a GPU engine: every way to split one replica, each evaluated end to end.

For one GPU type and weight format: tensor parallel 1, 2, 4, 8 within one node (the provider's
GPUs per node, `nodes.yaml`; attention heads must divide), pipeline stages across nodes (only
when no single-node shape fits), and for MoE models expert parallelism within the TP group.
Each shape that fits one full-context sequence gets its paged-KV concurrency, its curve and
operating point, the replicas the traffic needs and their cost; `recommend` ranks them.
"""

from __future__ import annotations

import math

from llmhost.errors import UsageError
from llmhost.plan import memory
from llmhost.plan.batching import (
    BatchLimits,
    batch_limits,
    held_tokens,
    paged_concurrency,
    sequence_kv_bytes_per_gpu,
)
from llmhost.plan.candidate import Option, empty, gib, price, replicas_for, required_rps
from llmhost.plan.operating import Traffic, choose, concurrency_levels, point
from llmhost.plan.step import ModelCost, Replica, model_cost, step_seconds
from llmhost.plan.types import Candidate, EngineArgs, MemoryBreakdown, Shape

TENSOR_PARALLEL = (1, 2, 4, 8)
MAX_NODES = 4
KV_DTYPE_BYTES = {"auto": 2, "fp8": 1}


def shape_label(shape: Shape) -> str:
    """`TP 2`, `TP 8 x PP 2`, `TP 4 EP 4`."""
    label = f"TP {shape.tp}"
    if shape.pp > 1:
        label += f" x PP {shape.pp}"
    if shape.ep > 1:
        label += f" EP {shape.ep}"
    return label


def shapes(opt: Option, gpu_count: int | None) -> tuple[list[Shape], list[Shape]]:
    """Single-node shapes, then multi-node (pipeline) shapes, allowed for this option."""
    spec, gpu, req = opt.source.spec, opt.gpu, opt.req
    node = opt.catalog.gpus_per_node(gpu.id, req.provider)
    tps = [t for t in TENSOR_PARALLEL if t <= node and spec.attention_heads % t == 0]
    if req.tensor_parallel is not None:
        if req.tensor_parallel not in TENSOR_PARALLEL:
            raise UsageError(f"--tp {req.tensor_parallel}: use 1, 2, 4 or 8")
        if req.tensor_parallel > node:
            where = f" at {req.provider}" if req.provider else ""
            raise UsageError(
                f"--tp {req.tensor_parallel} exceeds the {node} {gpu.id} GPUs of one node{where}"
            )
        tps = [t for t in tps if t == req.tensor_parallel]
    single = [Shape(t, 1, 1) for t in tps]
    multi = [Shape(max(tps), pp, 1) for pp in range(2, MAX_NODES + 1) if tps and spec.layers >= pp]
    if spec.is_moe:
        single += [Shape(s.tp, 1, s.tp) for s in single if s.tp > 1]
        multi += [Shape(s.tp, s.pp, s.tp) for s in multi]
    if gpu_count:
        single = [s for s in single if s.gpus == gpu_count]
        multi = [s for s in multi if s.gpus == gpu_count]
        if not single and not multi:
            raise UsageError(
                f"--gpu-count {gpu_count}: use 1, 2, 4 or 8 (within one {node}-GPU node), "
                "or a multiple of the node's TP for pipeline stages"
            )
    return single, multi


def kv_dtype_bytes(opt: Option) -> int:
    """KV cache element size the option runs with (fp8 needs compute capability 8.0+)."""
    dtype = opt.req.kv_cache_dtype
    if dtype not in KV_DTYPE_BYTES:
        raise UsageError(f"--kv-cache-dtype {dtype}: use auto or fp8")
    return KV_DTYPE_BYTES[dtype]


def gpu_candidates(opt: Option, weights: int, gpu_count: int | None) -> list[Candidate]:
    """A candidate per single-node shape (fitting or not); pipeline shapes only when none fits."""
    source, gpu, fmt, engine, catalog, _ = opt.parts()
    limits = batch_limits(engine, gpu)
    kv_bytes = kv_dtype_bytes(opt)
    if kv_bytes == 1 and (gpu.compute_capability or 0) < 8.0:
        return [
            empty(
                gpu,
                fmt,
                engine.id,
                weights,
                [
                    "fp8 KV cache needs compute capability 8.0+ "
                    f"({gpu.id}: {gpu.compute_capability})"
                ],
            )
        ]
    cost = model_cost(source.spec, fmt, catalog)
    single, multi = shapes(opt, gpu_count)
    found: list[Candidate] = []
    misfits: list[Candidate] = []
    for shape in single:
        cand = _try_shape(opt, weights, shape, limits, kv_bytes, cost)
        (found if cand.fits else misfits).append(cand)
    if found:
        return found + misfits
    for shape in multi:
        cand = _try_shape(opt, weights, shape, limits, kv_bytes, cost)
        if cand.fits:
            found.append(cand)
        else:
            misfits = [cand]
    return found or misfits[-1:]


def _try_shape(
    opt: Option, weights: int, shape: Shape, limits: BatchLimits, kv_bytes: int, cost: ModelCost
) -> Candidate:
    """The shape evaluated at the GPU class's batch limits, or at the smaller limits that make
    one full-context sequence fit (a smaller profiling peak), or its shortfall."""
    source, gpu, _, engine, _, req = opt.parts()
    small = BatchLimits(
        min(limits.max_num_seqs, engine.max_num_seqs),
        min(limits.max_num_batched_tokens, engine.max_num_batched_tokens),
    )
    mem = None
    for tried in dict.fromkeys((limits, small)):
        mem = memory.vllm_memory(
            source.spec,
            weights,
            gpu,
            engine,
            shape.tp,
            shape.pp,
            req.context,
            kv_bytes,
            None,
            tried.max_num_batched_tokens,
            tried.max_num_seqs,
        )
        if mem.fits:
            cand = _evaluate(opt, weights, shape, mem, tried, kv_bytes, cost)
            if tried != limits:
                cand.reasons.insert(
                    1,
                    f"only with --max-num-seqs {tried.max_num_seqs} --max-num-batched-tokens "
                    f"{tried.max_num_batched_tokens} (the defaults' profiling peak leaves no "
                    f"room for one {req.context}-token sequence)",
                )
            return cand
    assert mem is not None
    return _misfit(opt, weights, shape, mem)


def _breakdown(gpu_bytes: int, mem: memory.VllmMemory) -> MemoryBreakdown:
    return MemoryBreakdown(
        device_bytes=gpu_bytes,
        budget_bytes=mem.budget,
        weights_bytes=mem.weights,
        kv_cache_bytes=max(mem.kv_available, 0),
        overhead_bytes=mem.activation_peak + mem.non_torch + mem.cuda_graphs,
        per_sequence_kv_bytes=mem.per_sequence_kv,
        shortfall_bytes=mem.shortfall,
    )


def _misfit(opt: Option, weights: int, shape: Shape, mem: memory.VllmMemory) -> Candidate:
    gpu, engine, req = opt.gpu, opt.engine, opt.req
    breakdown = _breakdown(gpu.memory_bytes, mem)
    reasons = [
        f"does not fit on {shape.gpus}x {gpu.id} ({shape_label(shape)}): short by "
        f"{gib(mem.shortfall)} per GPU (weights {gib(mem.weights)} + overhead "
        f"{gib(breakdown.overhead_bytes)} + one {req.context}-token sequence "
        f"{gib(mem.per_sequence_kv)} > budget {gib(mem.budget)})",
    ]
    if engine.offload_link_gbs:
        short = mem.shortfall * shape.gpus
        # every step would stream the missing weights over PCIe, plus the step's own fixed cost
        tps = 1 / (short / (engine.offload_link_gbs * 1e9) + engine.step_overhead_ms / 1000)
        reasons.append(
            f"offloading {gib(short)} of weights to host RAM would decode at about "
            f"{tps:.1f} tokens/s per GPU group (PCIe {engine.offload_link_gbs:g} GB/s): "
            "infeasible for serving"
        )
    cand = empty(gpu, opt.fmt, engine.id, weights, reasons)
    cand.gpu_count = cand.gpus_per_replica = shape.gpus
    cand.tensor_parallel, cand.pipeline_parallel = shape.tp, shape.pp
    cand.memory, cand.shape = breakdown, shape
    cand.kv_cache_dtype = req.kv_cache_dtype
    return cand


def _evaluate(
    opt: Option,
    weights: int,
    shape: Shape,
    mem: memory.VllmMemory,
    limits: BatchLimits,
    kv_bytes: int,
    cost: ModelCost,
) -> Candidate:
    source, gpu, fmt, engine, catalog, req = opt.parts()
    spec = source.spec
    held = held_tokens(req.prompt_tokens, req.output_tokens, engine.block_size)
    in_flight = memory.vllm_in_flight_tokens(engine, shape.pp, limits.max_num_batched_tokens)
    per_seq = sequence_kv_bytes_per_gpu(spec, held, shape.tp, shape.pp, kv_bytes, in_flight - 1)
    held_concurrency = paged_concurrency(mem.kv_available, per_seq)
    limit = max(1, min(held_concurrency, limits.max_num_seqs))
    rep = Replica(gpu, engine, shape.tp, shape.pp, shape.ep, kv_bytes)

    def step(decode: float, context: float, prefill: float, span: float) -> float:
        """One engine step of this replica (see `llmhost.plan.step`)."""
        return step_seconds(cost, fmt, rep, decode, context, prefill, span)

    traffic = Traffic(req.prompt_tokens, req.output_tokens)
    curve = [
        point(
            step,
            c,
            limit,
            limits.max_num_batched_tokens,
            traffic,
            engine.request_overhead_ms / 1000,
        )
        for c in concurrency_levels(limit, req.concurrency)
    ]
    chosen, meets = choose(curve, limit, req.ttft_s, req.min_user_tokens_per_s, req.concurrency)
    single = curve[0]
    chunk = min(req.prompt_tokens, limits.max_num_batched_tokens)
    prefill_s = math.ceil(req.prompt_tokens / chunk) * step(0, 0, chunk, req.prompt_tokens / 2)
    capacity = chosen.aggregate_tokens_per_s / req.output_tokens
    replicas = replicas_for(required_rps(req), capacity, req)
    reasons = [
        f"fits on {shape.gpus}x {gpu.id} ({shape_label(shape)}): {gib(mem.kv_available)} per "
        f"GPU of KV cache, {mem.kv_tokens:,} tokens; {held_concurrency} requests of "
        f"~{held} held tokens at once",
    ]
    if not meets:
        if req.ttft_s is not None and chosen.ttft_s > req.ttft_s:
            reasons.append(f"TTFT {chosen.ttft_s:.2f} s misses the {req.ttft_s:g} s target")
        if chosen.per_user_tokens_per_s < req.min_user_tokens_per_s:
            alone = " even alone" if chosen.concurrency == 1 else ""
            reasons.append(
                f"{chosen.per_user_tokens_per_s:.1f} tokens/s per user{alone} misses the "
                f"{req.min_user_tokens_per_s:g} tokens/s target"
            )
    if replicas > 1:
        reasons.append(f"{replicas} replicas for {required_rps(req):.2f} req/s at peak")
    seqs = min(chosen.running, limit)
    if held_concurrency >= 2:
        seqs = max(seqs, 2)  # never switch continuous batching off
    cand = Candidate(
        gpu=gpu.id,
        gpu_count=shape.gpus * replicas,
        quantization=fmt.id,
        engine=engine.id,
        fits=True,
        weights_bytes=weights,
        max_kv_tokens=mem.kv_tokens,
        max_concurrent_sequences=held_concurrency,
        decode_tokens_per_s_single=round(single.per_user_tokens_per_s, 2),
        decode_tokens_per_s_aggregate=round(chosen.aggregate_tokens_per_s, 2),
        hourly_cost_usd=None,
        monthly_cost_usd=None,
        cost_per_million_output_tokens_usd=None,
        reasons=reasons,
        tensor_parallel=shape.tp,
        pipeline_parallel=shape.pp,
        replicas=replicas,
        gpus_per_replica=shape.gpus,
        kv_cache_dtype=req.kv_cache_dtype,
        gpu_memory_utilization=engine.gpu_memory_utilization,
        memory=_breakdown(gpu.memory_bytes, mem),
        operating_batch=chosen.running,
        per_user_tokens_per_s=round(chosen.per_user_tokens_per_s, 2),
        prefill_tokens_per_s=round(req.prompt_tokens / prefill_s, 1),
        ttft_s=round(chosen.ttft_s, 4),
        requests_per_s_capacity=round(capacity, 4),
        load_time_s=round(engine.startup_s + weights / (engine.load_gbps * 1e9), 1),
        meets_targets=meets,
        shape=shape,
        engine_args=EngineArgs(
            max_num_seqs=seqs,
            max_num_batched_tokens=limits.max_num_batched_tokens,
            max_model_len=req.context,
            kv_cache_dtype=req.kv_cache_dtype,
            tensor_parallel_size=shape.tp,
            pipeline_parallel_size=shape.pp,
            enable_expert_parallel=shape.ep > 1,
            gpu_memory_utilization=engine.gpu_memory_utilization,
        ),
        curve=curve,
    )
    price(cand, catalog, req, spec)
    return cand
