"""Memory model: weights, KV cache and engine overhead, and whether a configuration fits.

Formulas (bytes):
- weights = sum over tensors of elements x bits(format, tensor role) / 8. GGUF formats follow
  llama.cpp's per-tensor type rules; AWQ/GPTQ/FP8/INT8 keep embeddings and lm_head at 16 bits.
- KV per token (all layers, full attention) = 2 x layers x kv_heads x head_dim x kv_dtype_bytes.
- KV per sequence of length C = per-layer-token bytes x sum over layers of min(C, cap(layer)),
  where cap is infinite for global layers and the window for sliding ones.
- vLLM charges every layer per token and pads hybrid groups (`vllm_kv_tokens`), and runs in a
  budget of memory x gpu_memory_utilization less weights, activation peak, non-torch memory and
  the CUDA-graph pool (`vllm_memory`).
- llama.cpp allocates the full cache for global layers, a window-sized cache per sequence for
  sliding layers, a compute buffer sized by n_ubatch and a logits buffer per slot
  (`llamacpp_memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.plan.architecture import ModelSpec, Tensor
from llmhost.plan.catalog import MIB, Catalog, EngineProfile, Gpu, WeightFormat

# Share of host RAM the planner lets llama.cpp use; the rest is left to the OS and the gateway.
HOST_MEMORY_SHARE = 0.85


def _use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's choice of layers whose attn_v / ffn_down get the higher-precision type."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def gguf_tensor_type(model: ModelSpec, fmt: WeightFormat, tensor: Tensor, catalog: Catalog) -> str:
    """The llama.cpp block type a GGUF quantization gives one tensor."""
    if tensor.kind == "small":
        return "F32"
    if tensor.kind == "output" or (tensor.kind == "embedding" and model.tie_embeddings):
        wanted = fmt.gguf["output"]
    elif tensor.name in ("attn_v", "ffn_down", "ffn_down_exps") and _use_more_bits(
        tensor.layer or 0, model.layers
    ):
        wanted = fmt.gguf["more_bits"]
    else:
        wanted = fmt.gguf["base"]
    while wanted is not None:
        kind = catalog.gguf_types[wanted]
        if tensor.cols % kind.block == 0:
            return wanted
        wanted = kind.fallback or "F16"
    return "F16"


def tensor_bytes(model: ModelSpec, fmt: WeightFormat, tensor: Tensor, catalog: Catalog) -> float:
    """Bytes one tensor class takes in format `fmt`."""
    if fmt.is_gguf:
        bits = catalog.gguf_types[gguf_tensor_type(model, fmt, tensor, catalog)].bits
        return tensor.params * bits / 8
    if tensor.kind == "small":
        return tensor.params * (4 if fmt.bits["linear"] >= 32 else 2)
    bits = fmt.bits[tensor.kind]
    if tensor.kind in ("linear", "expert"):
        bits += fmt.per_row_scale_bits / tensor.cols
    return tensor.params * bits / 8


def weights_bytes(model: ModelSpec, fmt: WeightFormat, catalog: Catalog) -> int:
    """Bytes of all weights the engine loads in format `fmt` (extra towers kept at 16 bits)."""
    total = sum(tensor_bytes(model, fmt, t, catalog) for t in model.tensors())
    return int(total + model.extra_params * 2)


def weights_read_per_step(
    model: ModelSpec, fmt: WeightFormat, catalog: Catalog, batch: int
) -> float:
    """Bytes of weights one decode step reads for `batch` sequences.

    The embedding table contributes one row per sequence (nothing, to first order). A routed
    expert is read when any sequence in the batch picks it: with k of E experts chosen per token,
    the expected share of experts touched is 1 - (1 - k/E)^batch.
    """
    touched = 1.0
    if model.is_moe:
        touched = 1 - (1 - model.experts_per_token / model.experts) ** max(batch, 1)
    total = 0.0
    for t in model.tensors():
        if t.kind == "embedding" and not model.tie_embeddings:
            continue
        size = tensor_bytes(model, fmt, t, catalog)
        total += size * touched if t.kind == "expert" else size
    return total


def kv_bytes_per_token(model: ModelSpec, kv_dtype_bytes: int = 2) -> int:
    """K and V bytes one token occupies across every layer with full attention."""
    return 2 * model.layers * model.kv_heads * model.head_dim * kv_dtype_bytes


def kv_bytes_per_layer_token(model: ModelSpec, kv_dtype_bytes: int = 2) -> int:
    """K and V bytes one token occupies in one layer."""
    return 2 * model.kv_heads * model.head_dim * kv_dtype_bytes


def kv_bytes_per_sequence(
    model: ModelSpec, context: int, kv_dtype_bytes: int = 2, window_slack: int = 0
) -> int:
    """KV bytes one sequence of `context` tokens holds; sliding layers stop at their window.

    `window_slack` widens the window (vLLM keeps window - 1 + its in-flight tokens).
    """
    window = (model.sliding_window or context) + window_slack
    tokens = model.global_layers * context + model.local_layers * min(context, window)
    return tokens * kv_bytes_per_layer_token(model, kv_dtype_bytes)


@dataclass(frozen=True)
class VllmKvLayout:
    """How vLLM's hybrid allocator groups layers: equal-size groups, padded per attention type."""

    layers: int
    group_size: int
    full_groups: int
    sliding_groups: int

    @property
    def padded_layers(self) -> int:
        """Layers vLLM charges for every cached token (real layers plus padding)."""
        return self.group_size * (self.full_groups + self.sliding_groups)

    @property
    def padding_layers(self) -> int:
        """Layers added by padding: memory vLLM reserves but never uses."""
        return self.padded_layers - self.layers


def vllm_kv_layout(model: ModelSpec) -> VllmKvLayout:
    """vLLM's KV cache groups: group size is the smaller per-type layer count."""
    counts = [c for c in (model.global_layers, model.local_layers) if c]
    size = min(counts)
    return VllmKvLayout(
        layers=model.layers,
        group_size=size,
        full_groups=math.ceil(model.global_layers / size) if model.global_layers else 0,
        sliding_groups=math.ceil(model.local_layers / size) if model.local_layers else 0,
    )


def kv_heads_per_gpu(model: ModelSpec, tensor_parallel: int) -> int:
    """KV heads each GPU stores; heads are replicated when TP exceeds the KV head count."""
    return max(1, model.kv_heads // tensor_parallel)


@dataclass(frozen=True)
class VllmMemory:
    """Per-GPU memory budget of one vLLM replica, in bytes."""

    budget: int
    weights: int
    activation_peak: int
    non_torch: int
    cuda_graphs: int
    kv_available: int
    kv_tokens: int
    per_sequence_kv: int
    max_concurrent_sequences: int

    @property
    def fits(self) -> bool:
        """At least one sequence of the requested length fits in the KV budget."""
        return self.kv_available >= self.per_sequence_kv > 0

    @property
    def shortfall(self) -> int:
        """Bytes per GPU missing for one sequence (0 when it fits)."""
        return max(0, self.per_sequence_kv - self.kv_available)


def vllm_activation_peak(
    model: ModelSpec,
    engine: EngineProfile,
    tensor_parallel: int,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
) -> int:
    """Peak activation bytes of vLLM's profiling run at max_num_batched_tokens.

    The larger of the forward pass (per batched token: the gated MLP's two intermediate tensors
    and the q/k/v output, TP-sharded, plus two hidden-size residual buffers, in 2-byte elements)
    and the sampler's dummy run over min(max_num_seqs, tokens) sequences x vocabulary logits
    (`sampler_bytes_per_logit`; the logits are gathered, so TP does not shard them).
    """
    inter = model.intermediate_size
    if model.is_moe:
        inter = max(
            inter,
            model.expert_intermediate_size * (model.experts_per_token + model.shared_experts),
        )
    qkv = (model.attention_heads + 2 * model.kv_heads) * model.head_dim
    per_token = (2 * inter + qkv) / tensor_parallel + 2 * model.hidden_size
    tokens = max_num_batched_tokens or engine.max_num_batched_tokens
    seqs = max_num_seqs or engine.max_num_seqs
    forward = tokens * per_token * 2
    sampler = min(seqs, tokens) * model.vocab_size * engine.sampler_bytes_per_logit
    return int(max(forward, sampler))


def vllm_in_flight_tokens(engine: EngineProfile, pipeline_parallel: int, batched: int) -> int:
    """Tokens scheduled but not yet settled (vLLM's `VllmConfig.max_in_flight_tokens`): one
    `max_num_batched_tokens` batch per concurrent step, pipeline stages plus one under async
    scheduling. Sliding-window groups keep this many tokens beyond their window."""
    batches = pipeline_parallel + (1 if engine.async_scheduling else 0)
    return batches * batched


def vllm_kv_tokens(
    model: ModelSpec,
    kv_available_per_gpu: int,
    tensor_parallel: int,
    pipeline_parallel: int,
    kv_dtype_bytes: int,
    block_size: int = 16,
    *,
    max_model_len: int,
    in_flight_tokens: int,
) -> int:
    """The figure vLLM logs as "KV cache size: N tokens" for this per-GPU KV budget.

    vLLM (v0.32 `get_kv_cache_capacity`) logs max concurrency x max_model_len: the block pool
    (budget // (page x layers per group)) over the blocks one request at max_model_len takes
    from every group: cdiv(max_model_len, block) for a full-attention group, and
    cdiv(min(window - 1 + in-flight tokens, max_model_len), block) + 1 for a sliding one. For a
    model with one full-attention group that equals blocks x block size.
    """
    layout = vllm_kv_layout(model)
    per_layer = 2 * kv_heads_per_gpu(model, tensor_parallel) * model.head_dim * kv_dtype_bytes
    page = per_layer * block_size
    layers_per_gpu = math.ceil(layout.padded_layers / pipeline_parallel)
    groups = layout.full_groups + layout.sliding_groups
    group_layers = math.ceil(layers_per_gpu / groups)
    blocks = max(kv_available_per_gpu, 0) // page // group_layers
    full = math.ceil(max_model_len / block_size)
    if model.sliding_window:
        held = min(model.sliding_window - 1 + in_flight_tokens, max_model_len)
        sliding = math.ceil(held / block_size) + 1
    else:
        sliding = full
    per_request = layout.full_groups * full + layout.sliding_groups * sliding
    return int(blocks / per_request * max_model_len) if per_request else 0


def vllm_memory(
    model: ModelSpec,
    weights_total: int,
    gpu: Gpu,
    engine: EngineProfile,
    tensor_parallel: int,
    pipeline_parallel: int,
    context: int,
    kv_dtype_bytes: int | None = None,
    gpu_memory_utilization: float | None = None,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
) -> VllmMemory:
    """Per-GPU memory of a vLLM replica sharded over tensor_parallel x pipeline_parallel GPUs.

    Batch limits default to the engine profile's; pass the GPU class's (`batching.batch_limits`).
    """
    kv_bytes = kv_dtype_bytes or engine.kv_dtype_bytes
    util = gpu_memory_utilization or engine.gpu_memory_utilization
    gpus = tensor_parallel * pipeline_parallel
    budget = int(gpu.memory_bytes * util)
    weights = math.ceil(weights_total / gpus)
    batched = max_num_batched_tokens or engine.max_num_batched_tokens
    activation = vllm_activation_peak(model, engine, tensor_parallel, batched, max_num_seqs)
    non_torch = int((engine.non_torch_mib + (engine.nccl_mib if gpus > 1 else 0)) * MIB)
    graphs = int(engine.cuda_graph_mib * MIB)
    kv_available = budget - weights - activation - non_torch - graphs
    layout = vllm_kv_layout(model)
    in_flight = vllm_in_flight_tokens(engine, pipeline_parallel, batched)
    slack = in_flight - 1
    per_seq_real = kv_bytes_per_sequence(model, context, kv_bytes, window_slack=slack)
    # Charge padding layers in proportion, and shard by TP (heads) and PP (layers).
    pad = layout.padded_layers / model.layers
    head_share = kv_heads_per_gpu(model, tensor_parallel) / model.kv_heads
    per_seq_gpu = math.ceil(per_seq_real * pad * head_share / pipeline_parallel)
    concurrent = max(kv_available, 0) // per_seq_gpu if per_seq_gpu else 0
    return VllmMemory(
        budget=budget,
        weights=weights,
        activation_peak=activation,
        non_torch=non_torch,
        cuda_graphs=graphs,
        kv_available=kv_available,
        kv_tokens=vllm_kv_tokens(
            model,
            kv_available,
            tensor_parallel,
            pipeline_parallel,
            kv_bytes,
            engine.block_size,
            max_model_len=context,
            in_flight_tokens=in_flight,
        ),
        per_sequence_kv=per_seq_gpu,
        max_concurrent_sequences=int(concurrent),
    )


@dataclass(frozen=True)
class LlamaCppMemory:
    """Host memory of one llama-server process, in bytes, as its load log breaks it down."""

    weights: int
    kv_full: int
    kv_sliding: int
    compute: int
    output: int
    context: int
    parallel: int

    @property
    def kv(self) -> int:
        """Both KV caches together."""
        return self.kv_full + self.kv_sliding

    @property
    def total(self) -> int:
        """Everything the process allocates for the model."""
        return self.weights + self.kv + self.compute + self.output


def _pad(value: int, to: int) -> int:
    return -(-value // to) * to


def llamacpp_memory(
    model: ModelSpec,
    weights: int,
    engine: EngineProfile,
    context: int,
    parallel: int = 1,
    unified_kv: bool = False,
) -> LlamaCppMemory:
    """llama-server's allocation for `parallel` slots of `context` tokens each.

    Global layers get context x parallel cells. Sliding layers get pad256(min(context,
    window + n_ubatch)) cells per slot (per cache when the KV is unified). The compute buffer
    holds n_ubatch tokens of MLP, attention and residual intermediates in fp32; the output
    buffer holds fp32 logits for one token per slot.
    """
    per_layer = kv_bytes_per_layer_token(model, engine.kv_dtype_bytes)
    n_ctx = context * parallel
    kv_full = model.global_layers * n_ctx * per_layer
    kv_sliding = 0
    if model.local_layers:
        window = model.sliding_window or context
        if unified_kv:
            cells = _pad(min(n_ctx, window * parallel + engine.n_ubatch), 256)
        else:
            cells = _pad(min(context, window + engine.n_ubatch), 256) * parallel
        kv_sliding = model.local_layers * cells * per_layer
    q_dim = model.attention_heads * model.head_dim
    kv_dim = model.kv_heads * model.head_dim
    inter = max(model.intermediate_size, model.expert_intermediate_size)
    compute = engine.n_ubatch * (2 * inter + 4 * model.hidden_size + 3 * q_dim + 2 * kv_dim) * 4
    output = model.vocab_size * 4 * parallel
    return LlamaCppMemory(
        weights=weights,
        kv_full=kv_full,
        kv_sliding=kv_sliding,
        compute=compute,
        output=output,
        context=context,
        parallel=parallel,
    )


def host_memory_budget(gpu: Gpu) -> int:
    """Bytes of host RAM the planner lets a CPU engine use."""
    return int(gpu.memory_bytes * HOST_MEMORY_SHARE)
