"""The step model: seconds for one vLLM engine step, built from per-layer operators.

One continuous-batching step runs `decode` sequences one token each plus `prefill` prompt tokens
(chunked prefill rides inside decode steps), so the GEMMs see M = decode + prefill rows. Per
layer (`llmhost.plan.gemm` for the GEMM roofline, `llmhost.plan.comm` for links):

- dense GEMMs (q/k/v/o, gate/up/down, shared experts): weights / TP, M rows;
- routed experts (MoE layers): the batch touches 1 - (1 - k/E)^M of the experts, each with
  M x k / touched rows. Tensor parallel slices every expert (narrow slices derate compute:
  `moe_tp_min_slice`); expert parallel keeps experts whole, E / EP per GPU, and the busiest GPU
  carries `moe_ep_imbalance` x the mean share. Either way the layer ends in the same all-reduce
  (vLLM's EP within a TP group reduces expert outputs like TP does);
- attention: decode reads the KV every sequence holds (sliding layers stop at their window) at
  achieved bandwidth; prefill attention costs 4 x tokens x span x q_dim FLOPs;
- two all-reduces of M x hidden 16-bit activations (after attention and after the MLP).

Then the lm_head (vocab-parallel over TP) for the sequences that sample, and a per-step CPU cost
(`step_overhead_ms` plus `step_overhead_per_seq_us` per running sequence: scheduling, sampling,
detokenizing). Pipeline parallelism splits the layers into `pp` stages on different nodes; the
batch runs as `pp` micro-batches, so a sequence's step is pp stage times of its micro-batch plus
pp - 1 network hops: the pipeline bubble a single stream always pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog import Catalog, EngineProfile, Gpu, WeightFormat
from llmhost.plan.comm import all_reduce_seconds, pipeline_hop_seconds
from llmhost.plan.gemm import gemm_seconds
from llmhost.plan.memory import kv_heads_per_gpu, tensor_bytes

ACTIVATION_BYTES = 2  # activations travel in 16-bit


@dataclass(frozen=True)
class Replica:
    """One engine instance: GPU type, how it is split, and its KV cache element size."""

    gpu: Gpu
    engine: EngineProfile
    tp: int = 1
    pp: int = 1
    ep: int = 1
    kv_dtype_bytes: int = 2

    def peak_flops(self, fmt: WeightFormat) -> float:
        """Dense FLOP/s of one GPU for this format's GEMMs (FP8 where the GPU has it)."""
        if fmt.compute == "fp8" and self.gpu.tflops_fp8:
            return self.gpu.tflops_fp8 * 1e12
        return self.gpu.tflops_bf16 * 1e12

    @property
    def bandwidth(self) -> float:
        """Achieved memory bandwidth of one GPU, bytes/s."""
        return self.gpu.bandwidth_gbs * 1e9 * self.engine.bandwidth_efficiency


@dataclass(frozen=True)
class LayerGroup:
    """Layers that cost the same: their count, GEMM sizes (per layer) and attention kind."""

    count: int
    sliding: bool
    dense_params: float
    dense_bytes: float
    expert_params: float = 0.0  # one routed expert
    expert_bytes: float = 0.0


@dataclass(frozen=True)
class ModelCost:
    """What the step model needs of a model in one weight format, computed once."""

    model: ModelSpec
    groups: tuple[LayerGroup, ...]
    head_params: float
    head_bytes: float


def model_cost(model: ModelSpec, fmt: WeightFormat, catalog: Catalog) -> ModelCost:
    """Per-layer GEMM sizes and bytes of `model` in `fmt`, grouped into identical layers."""
    per_layer: dict[int, list[float]] = {}
    head_params = head_bytes = 0.0
    for t in model.tensors():
        size = tensor_bytes(model, fmt, t, catalog)
        if t.layer is None:
            if t.kind == "output" or (t.kind == "embedding" and model.tie_embeddings):
                head_params, head_bytes = float(t.params), size
            continue
        row = per_layer.setdefault(t.layer, [0.0, 0.0, 0.0, 0.0])
        if t.kind == "linear":
            row[0] += t.params
            row[1] += size
        elif t.kind == "expert" and model.experts:
            row[2] += t.params / model.experts
            row[3] += size / model.experts
    counts: dict[tuple[bool, float, float, float, float], int] = {}
    for layer, (dp, db, ep, eb) in per_layer.items():
        key = (model.layer_types[layer] == "sliding", dp, db, ep, eb)
        counts[key] = counts.get(key, 0) + 1
    groups = tuple(LayerGroup(n, *key) for key, n in counts.items())
    return ModelCost(model, groups, head_params, head_bytes)


def _experts_seconds(
    g: LayerGroup, model: ModelSpec, fmt: WeightFormat, rep: Replica, m: float
) -> float:
    k, experts = model.experts_per_token, model.experts
    routed = m * k
    touched = experts * (1 - (1 - k / experts) ** m)
    rows = routed / touched
    peak, bw, engine = rep.peak_flops(fmt), rep.bandwidth, rep.engine
    if rep.ep > 1:
        imbalance = engine.moe_ep_imbalance
        local = min(experts / rep.ep, touched / rep.ep * imbalance)
        return gemm_seconds(rows, g.expert_params * local, g.expert_bytes * local, peak, bw, engine)
    slice_width = model.expert_intermediate_size / rep.tp
    derate = min(1.0, slice_width / engine.moe_tp_min_slice) if engine.moe_tp_min_slice else 1.0
    return gemm_seconds(
        rows,
        g.expert_params * touched / rep.tp,
        g.expert_bytes * touched / rep.tp,
        peak,
        bw,
        engine,
        slice_efficiency=derate,
    )


def _attention_seconds(
    model: ModelSpec,
    rep: Replica,
    sliding: bool,
    decode: float,
    context: float,
    prefill: float,
    span: float,
) -> float:
    window = model.sliding_window if sliding and model.sliding_window else math.inf
    per_token = 2 * kv_heads_per_gpu(model, rep.tp) * model.head_dim * rep.kv_dtype_bytes
    read = decode * min(context, window) * per_token
    q_dim = model.attention_heads * model.head_dim / rep.tp
    flops = 4.0 * prefill * min(span, window) * q_dim
    attention_peak = rep.gpu.tflops_bf16 * 1e12 * rep.engine.compute_efficiency
    return read / rep.bandwidth + flops / attention_peak


def _layer_seconds(
    cost: ModelCost,
    g: LayerGroup,
    fmt: WeightFormat,
    rep: Replica,
    decode: float,
    context: float,
    prefill: float,
    span: float,
) -> float:
    model = cost.model
    m = decode + prefill
    t = gemm_seconds(
        m,
        g.dense_params / rep.tp,
        g.dense_bytes / rep.tp,
        rep.peak_flops(fmt),
        rep.bandwidth,
        rep.engine,
    )
    if g.expert_params:
        t += _experts_seconds(g, model, fmt, rep, m)
    t += _attention_seconds(model, rep, g.sliding, decode, context, prefill, span)
    t += 2 * all_reduce_seconds(m * model.hidden_size * ACTIVATION_BYTES, rep.tp, rep.gpu)
    return t


def step_seconds(
    cost: ModelCost,
    fmt: WeightFormat,
    rep: Replica,
    decode: float,
    context: float,
    prefill: float = 0.0,
    span: float = 0.0,
) -> float:
    """Seconds of one engine step: `decode` sequences holding `context` tokens on average,
    plus `prefill` prompt tokens attending over `span` tokens on average."""
    if decode <= 0 and prefill <= 0:
        return 0.0
    pp = rep.pp
    micro_decode, micro_prefill = decode / pp, prefill / pp
    stage = sum(
        g.count / pp * _layer_seconds(cost, g, fmt, rep, micro_decode, context, micro_prefill, span)
        for g in cost.groups
    )
    sampled = decode + (1 if prefill > 0 else 0)
    head = gemm_seconds(
        sampled,
        cost.head_params / rep.tp,
        cost.head_bytes / rep.tp,
        rep.peak_flops(fmt),
        rep.bandwidth,
        rep.engine,
    )
    hops = 0.0
    if pp > 1:
        message = (micro_decode + micro_prefill) * cost.model.hidden_size * ACTIVATION_BYTES
        hops = (pp - 1) * pipeline_hop_seconds(message, rep.gpu)
    cpu = rep.engine.step_overhead_ms / 1000 + decode * rep.engine.step_overhead_per_seq_us / 1e6
    return pp * stage + head + hops + cpu
