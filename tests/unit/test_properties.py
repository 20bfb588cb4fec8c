"""Monotonic properties of the memory model, checked by hypothesis over the catalog."""

from hypothesis import given, settings
from hypothesis import strategies as st

from llmhost.plan import memory
from llmhost.plan.catalog import load_catalog

CATALOG = load_catalog()
MODELS = sorted(CATALOG.models)
GPUS = sorted(g for g in CATALOG.gpus if g != "cpu")


@given(st.sampled_from(MODELS), st.integers(1, 200_000), st.integers(1, 200_000))
def test_more_context_never_needs_less_kv(model_id: str, a: int, b: int) -> None:
    m = CATALOG.model(model_id)
    lo, hi = sorted((a, b))
    assert memory.kv_bytes_per_sequence(m, lo) <= memory.kv_bytes_per_sequence(m, hi)


@given(st.sampled_from(MODELS), st.integers(1, 65_536), st.integers(1, 65_536), st.integers(1, 8))
def test_more_context_never_needs_less_llamacpp_memory(
    model_id: str, a: int, b: int, parallel: int
) -> None:
    m = CATALOG.model(model_id)
    engine = CATALOG.engine("llamacpp")
    lo, hi = sorted((a, b))
    small = memory.llamacpp_memory(m, 0, engine, lo, parallel)
    large = memory.llamacpp_memory(m, 0, engine, hi, parallel)
    assert small.total <= large.total


@settings(max_examples=200)
@given(
    st.sampled_from(MODELS),
    st.sampled_from(GPUS),
    st.sampled_from(["bf16", "fp8", "awq"]),
    st.integers(512, 32_768),
)
def test_more_gpus_never_fit_fewer_tokens(model_id: str, gpu_id: str, fmt: str, ctx: int) -> None:
    m = CATALOG.model(model_id)
    engine = CATALOG.engine("vllm")
    weights = memory.weights_bytes(m, CATALOG.format(fmt), CATALOG)
    gpu = CATALOG.gpu(gpu_id)
    # Tensor parallel up to the KV head count (beyond it heads are replicated), then nodes.
    shapes = [(tp, 1) for tp in (1, 2, 4, 8) if tp <= m.kv_heads] + [(8, 2), (8, 4)]
    shapes = [s for s in shapes if s[0] <= m.kv_heads or s[1] > 1]
    tokens = [
        max(0, memory.vllm_memory(m, weights, gpu, engine, tp, pp, ctx).kv_tokens)
        for tp, pp in shapes
        if tp <= max(m.kv_heads, 1)
    ]
    assert tokens == sorted(tokens)


@given(st.sampled_from(MODELS), st.integers(1, 4096), st.integers(1, 4096))
def test_bigger_batches_read_no_fewer_weights(model_id: str, a: int, b: int) -> None:
    m = CATALOG.model(model_id)
    fmt = CATALOG.format("bf16")
    lo, hi = sorted((a, b))
    assert memory.weights_read_per_step(m, fmt, CATALOG, lo) <= memory.weights_read_per_step(
        m, fmt, CATALOG, hi
    )
