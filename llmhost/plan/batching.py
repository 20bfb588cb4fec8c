"""How many requests a vLLM replica holds at once: the engine's batch limits for the GPU class and
the paged KV cache's concurrency for the traffic's length mix.

- Batch limits: vLLM's API server defaults (`EngineArgs.get_batch_defaults` in
  `vllm/engine/arg_utils.py`): `max_num_seqs` 1024 and `max_num_batched_tokens` 8192 on GPUs with
  at least 70 GiB that are not A100s (H100, H200), 256 and 2048 elsewhere. The numbers are data
  (`engines.yaml`), the rule is here.
- Paged KV: vLLM allocates 16-token blocks for the tokens a request holds now (prompt plus output
  so far), not for `max_model_len`. Over its life a request holds on average
  prompt + (output + 1) / 2 tokens, rounded up to whole blocks; the KV budget divided by that is
  the concurrency memory allows. A plan still requires one full `max_model_len` sequence to fit,
  as vLLM refuses to start otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog import GIB, EngineProfile, Gpu
from llmhost.plan.memory import kv_bytes_per_sequence, kv_heads_per_gpu, vllm_kv_layout


@dataclass(frozen=True)
class BatchLimits:
    """The scheduler's per-step limits: running sequences and tokens per step."""

    max_num_seqs: int
    max_num_batched_tokens: int


def batch_limits(engine: EngineProfile, gpu: Gpu) -> BatchLimits:
    """The engine's default batch limits on `gpu` (vLLM: larger on >= 70 GiB non-A100 GPUs)."""
    large = (
        engine.large_max_num_seqs > 0
        and gpu.memory_mib is not None
        and gpu.memory_mib * 2**20 >= engine.large_gpu_min_gib * GIB
        and not (engine.large_gpu_excluded and engine.large_gpu_excluded in gpu.id)
    )
    if large:
        return BatchLimits(engine.large_max_num_seqs, engine.large_max_num_batched_tokens)
    return BatchLimits(engine.max_num_seqs, engine.max_num_batched_tokens)


def held_tokens(prompt_tokens: int, output_tokens: int, block_size: int = 16) -> int:
    """Mean tokens one running request holds in the paged KV cache, in whole blocks."""
    mean = prompt_tokens + (output_tokens + 1) / 2
    return int(math.ceil(mean / block_size) * block_size)


def sequence_kv_bytes_per_gpu(
    model: ModelSpec,
    tokens: int,
    tensor_parallel: int,
    pipeline_parallel: int,
    kv_dtype_bytes: int,
    window_slack: int,
) -> int:
    """KV bytes one sequence of `tokens` takes on each GPU of the replica, as vLLM charges it.

    Sliding-window layers stop at window - 1 + max_num_batched_tokens; padding layers of hybrid
    models are charged in proportion; heads shard over TP and layers over PP.
    """
    layout = vllm_kv_layout(model)
    real = kv_bytes_per_sequence(model, tokens, kv_dtype_bytes, window_slack=window_slack)
    pad = layout.padded_layers / model.layers
    head_share = kv_heads_per_gpu(model, tensor_parallel) / model.kv_heads
    return math.ceil(real * pad * head_share / pipeline_parallel)


def paged_concurrency(kv_available_per_gpu: int, per_sequence_bytes: int) -> int:
    """Requests the KV budget holds at once when each holds `per_sequence_bytes` per GPU."""
    if per_sequence_bytes <= 0:
        return 0
    return int(max(kv_available_per_gpu, 0) // per_sequence_bytes)
