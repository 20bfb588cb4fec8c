"""A model's architecture as the planner needs it, and the tensors it implies.

Everything the memory and speed models know about a model comes from `ModelSpec`: the numbers
in its `config.json` (or GGUF metadata). Parameter counts are derived from the tensor list, so a
catalog figure and a computed figure can check each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

LayerKind = Literal["full", "sliding"]
TensorKind = Literal[
    "embedding",  # token embedding table (one row read per token)
    "output",  # lm_head (read in full per token; the embedding itself when tied)
    "linear",  # attention and dense MLP projections
    "expert",  # one routed expert's projection (read only when the expert is chosen)
    "small",  # norms, biases, routers: kept in high precision by every format
]


@dataclass(frozen=True)
class Tensor:
    """One weight tensor class: `count` tensors of `rows` x `cols` (cols = GGUF ne0 = inputs)."""

    name: str
    kind: TensorKind
    rows: int
    cols: int
    count: int = 1
    layer: int | None = None

    @property
    def params(self) -> int:
        """Elements in all `count` tensors."""
        return self.rows * self.cols * self.count


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a decoder-only transformer, dense or mixture-of-experts."""

    id: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    tie_embeddings: bool = False
    attention_bias: bool = False
    # Attention pattern: `sliding_window` tokens for local layers; every `global_every`-th layer
    # (1-based) is global. `global_every` None with a window means every layer is local.
    sliding_window: int | None = None
    global_every: int | None = None
    # Mixture of experts. `moe_every` = k: every k-th layer (1-based) is MoE, the rest dense.
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    expert_intermediate_size: int = 0
    moe_every: int = 1
    # Parameters outside the language model that the engine still loads (a vision tower).
    extra_params: int = 0
    extra_params_note: str = ""
    # Gemma-style extra norms: 4 per layer plus q/k norms.
    norms_per_layer: int = 2
    qk_norm: bool = False
    hf_repo: str = ""
    source: str = ""
    as_of: str = ""
    published_total_params: int | None = None
    published_active_params: int | None = None
    layer_types: tuple[LayerKind, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.layer_types:
            object.__setattr__(self, "layer_types", self._derive_layer_types())

    def _derive_layer_types(self) -> tuple[LayerKind, ...]:
        full: LayerKind = "full"
        sliding: LayerKind = "sliding"
        if not self.sliding_window:
            return (full,) * self.layers
        if not self.global_every:
            return (sliding,) * self.layers
        return tuple(
            full if (i + 1) % self.global_every == 0 else sliding for i in range(self.layers)
        )

    @property
    def is_moe(self) -> bool:
        """True when some layers route tokens to a subset of experts."""
        return self.experts > 0

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer `layer` (0-based) is a mixture-of-experts layer."""
        return self.is_moe and (layer + 1) % self.moe_every == 0

    @property
    def local_layers(self) -> int:
        """Layers that attend only to the last `sliding_window` tokens."""
        return sum(1 for t in self.layer_types if t == "sliding")

    @property
    def global_layers(self) -> int:
        """Layers that attend to the whole context."""
        return self.layers - self.local_layers

    def tensors(self) -> Iterator[Tensor]:
        """Every weight tensor, grouped by shape; shapes follow the Hugging Face layout."""
        h = self.hidden_size
        q_out = self.attention_heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        yield Tensor("token_embd", "embedding", self.vocab_size, h)
        if not self.tie_embeddings:
            yield Tensor("output", "output", self.vocab_size, h)
        yield Tensor("output_norm", "small", 1, h)
        for i in range(self.layers):
            yield Tensor("attn_q", "linear", q_out, h, layer=i)
            yield Tensor("attn_k", "linear", kv_out, h, layer=i)
            yield Tensor("attn_v", "linear", kv_out, h, layer=i)
            yield Tensor("attn_output", "linear", h, q_out, layer=i)
            yield Tensor("norm", "small", 1, h, count=self.norms_per_layer, layer=i)
            if self.qk_norm:
                yield Tensor("qk_norm", "small", 1, self.head_dim, count=2, layer=i)
            if self.attention_bias:
                yield Tensor("attn_bias", "small", 1, q_out + 2 * kv_out, layer=i)
            if self.is_moe_layer(i):
                e_inter = self.expert_intermediate_size
                yield Tensor("ffn_gate_inp", "small", self.experts, h, layer=i)
                yield Tensor("ffn_up_exps", "expert", e_inter, h, count=2 * self.experts, layer=i)
                yield Tensor("ffn_down_exps", "expert", h, e_inter, count=self.experts, layer=i)
                if self.shared_experts:
                    n = self.shared_experts
                    yield Tensor("ffn_up_shexp", "linear", e_inter, h, count=2 * n, layer=i)
                    yield Tensor("ffn_down_shexp", "linear", h, e_inter, count=n, layer=i)
            else:
                inter = self.intermediate_size
                yield Tensor("ffn_up", "linear", inter, h, count=2, layer=i)
                yield Tensor("ffn_down", "linear", h, inter, layer=i)

    @property
    def total_params(self) -> int:
        """All parameters the engine loads (language model plus any extra towers)."""
        return sum(t.params for t in self.tensors()) + self.extra_params

    @property
    def active_params(self) -> int:
        """Language-model parameters used per token (only `experts_per_token` routed experts)."""
        total = 0
        for t in self.tensors():
            if t.kind == "expert":
                total += t.params * self.experts_per_token // self.experts
            else:
                total += t.params
        return total

    @property
    def matmul_params_decode(self) -> int:
        """Active parameters multiplied per generated token (the lm_head included)."""
        embedding = self.vocab_size * self.hidden_size
        return self.active_params - (0 if self.tie_embeddings else embedding)

    @property
    def matmul_params_prefill(self) -> int:
        """Active parameters multiplied per prompt token (logits only for the last one)."""
        embedding = self.vocab_size * self.hidden_size
        return self.active_params - embedding * (1 if self.tie_embeddings else 2)
