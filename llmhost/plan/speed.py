"""Speed model: a roofline per decode step, prefill throughput and time to first token.

A decode step for a batch of B sequences at average context c must read the weights it uses
(`weights_read_per_step`) and each sequence's KV cache, and do 2 FLOPs per multiplied parameter
(active parameters less the embedding lookup) per sequence plus 4 x c x q_dim per layer for
attention. Prefill skips the lm_head for all but the last prompt token. Its time is the larger of

    memory time  = bytes / (bandwidth x bandwidth_efficiency)
    compute time = FLOPs / (peak FLOP/s x compute_efficiency)

divided by the tensor-parallel degree (times tensor_parallel_efficiency when > 1), plus a fixed
per-step overhead (scheduling, sampling, kernel launches). Prefill is compute-bound:
tokens/s = peak x efficiency / FLOPs per token. TTFT = prompt / prefill rate + one decode step.
Pipeline stages run one after another for a sequence (each reads its share of the weights, so a
token's latency is the same as one GPU group reading all of them); with at least as many
sequences as stages in flight the stages overlap, so aggregate throughput scales with their count.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog import Catalog, EngineProfile, Gpu, WeightFormat
from llmhost.plan.memory import kv_bytes_per_sequence, weights_read_per_step


@dataclass(frozen=True)
class Hardware:
    """What one replica runs on: a GPU type, its count and the engine's efficiency factors."""

    gpu: Gpu
    engine: EngineProfile
    tensor_parallel: int = 1
    pipeline_parallel: int = 1

    def peak_flops(self, fmt: WeightFormat) -> float:
        """Dense FLOP/s of one device for this format's compute type."""
        if fmt.compute == "fp8" and self.gpu.tflops_fp8:
            return self.gpu.tflops_fp8 * 1e12
        return self.gpu.tflops_bf16 * 1e12

    @property
    def parallel_speedup(self) -> float:
        """How much faster tensor parallelism makes one step."""
        tp = self.tensor_parallel
        return tp * (self.engine.tensor_parallel_efficiency if tp > 1 else 1.0)


def attention_flops_per_token(model: ModelSpec, context: int) -> float:
    """FLOPs of QK^T and AV for one new token attending to `context` tokens."""
    q_dim = model.attention_heads * model.head_dim
    window = model.sliding_window or context
    span = model.global_layers * context + model.local_layers * min(context, window)
    return 4.0 * q_dim * span


def decode_step_seconds(
    model: ModelSpec,
    fmt: WeightFormat,
    catalog: Catalog,
    hw: Hardware,
    batch: int,
    context: int,
) -> float:
    """Seconds for one decode step of `batch` sequences at average context `context`."""
    kv = kv_bytes_per_sequence(model, context, hw.engine.kv_dtype_bytes) * batch
    read = weights_read_per_step(model, fmt, catalog, batch) + kv
    flops = batch * (2.0 * model.matmul_params_decode + attention_flops_per_token(model, context))
    memory_s = read / (hw.gpu.bandwidth_gbs * 1e9 * hw.engine.bandwidth_efficiency)
    compute_s = flops / (hw.peak_flops(fmt) * hw.engine.compute_efficiency)
    return max(memory_s, compute_s) / hw.parallel_speedup + hw.engine.step_overhead_ms / 1000


def prefill_tokens_per_second(
    model: ModelSpec, fmt: WeightFormat, hw: Hardware, prompt_tokens: int
) -> float:
    """Prompt tokens processed per second by one replica (compute-bound)."""
    per_token = (
        2.0 * model.matmul_params_prefill + attention_flops_per_token(model, prompt_tokens) / 2
    )
    return hw.peak_flops(fmt) * hw.engine.compute_efficiency * hw.parallel_speedup / per_token


@dataclass(frozen=True)
class SpeedEstimate:
    """Decode and prefill speed of one replica for one workload."""

    decode_tokens_per_s_single: float
    decode_tokens_per_s_aggregate: float
    batch: int
    per_user_tokens_per_s: float
    prefill_tokens_per_s: float
    ttft_s: float
    curve: tuple[tuple[int, float], ...]


def batch_sizes(limit: int) -> list[int]:
    """Powers of two up to `limit`, and `limit` itself."""
    sizes, b = [], 1
    while b < limit:
        sizes.append(b)
        b *= 2
    return [*sizes, max(limit, 1)]


def estimate_speed(
    model: ModelSpec,
    fmt: WeightFormat,
    catalog: Catalog,
    hw: Hardware,
    max_batch: int,
    prompt_tokens: int,
    output_tokens: int,
    min_user_tokens_per_s: float = 0.0,
) -> SpeedEstimate:
    """Speed at batch 1 and at the largest batch that memory allows and users tolerate.

    The operating batch is the largest (up to `max_batch`) at which each sequence still decodes
    at `min_user_tokens_per_s` or faster.
    """
    context = prompt_tokens + output_tokens // 2
    curve = []
    for b in batch_sizes(max(1, max_batch)):
        step = decode_step_seconds(model, fmt, catalog, hw, b, context)
        curve.append((b, b / step * min(b, hw.pipeline_parallel)))
    single_step = decode_step_seconds(model, fmt, catalog, hw, 1, context)
    single = 1.0 / single_step
    batch, aggregate = 1, single
    for b, tps in curve:
        per_user = tps / b
        if per_user >= min_user_tokens_per_s and tps >= aggregate:
            batch, aggregate = b, tps
    prefill = prefill_tokens_per_second(model, fmt, hw, prompt_tokens)
    return SpeedEstimate(
        decode_tokens_per_s_single=single,
        decode_tokens_per_s_aggregate=aggregate,
        batch=batch,
        per_user_tokens_per_s=aggregate / batch,
        prefill_tokens_per_s=prefill,
        ttft_s=prompt_tokens / prefill + single_step,
        curve=tuple(curve),
    )
