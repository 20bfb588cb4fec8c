"""The catalog's data: complete, sourced, dated, and consistent with the architectures."""

import datetime

import pytest

from llmhost.plan.catalog import Catalog

MODEL_IDS = {
    "gemma-3-270m", "gemma-3-1b", "gemma-3-4b", "gemma-3-12b", "gemma-3-27b",
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-4-scout-17b-16e",
    "llama-4-maverick-17b-128e", "mixtral-8x22b", "mistral-7b", "qwen2.5-7b", "qwen2.5-72b",
}  # fmt: skip
GPU_IDS = {"t4", "l4", "a10g", "a40", "l40s", "a100-40gb", "a100-80gb", "h100-80gb", "h200", "cpu"}
FORMAT_IDS = {"fp32", "bf16", "fp16", "fp8", "int8", "awq", "gptq", "q4_k_m", "q5_k_m", "q8_0"}


def _dated(value: str) -> bool:
    return datetime.date.fromisoformat(value) <= datetime.date(2027, 1, 1)


def test_stable_ids(catalog: Catalog) -> None:
    assert set(catalog.models) >= MODEL_IDS
    assert set(catalog.gpus) >= GPU_IDS
    assert set(catalog.formats) >= FORMAT_IDS


def test_every_entry_has_source_and_date(catalog: Catalog) -> None:
    entries = [
        *catalog.models.values(), *catalog.gpus.values(), *catalog.formats.values(),
        *catalog.engines.values(), *catalog.gpu_prices, *catalog.hosted_apis,
        *catalog.control_plane_hourly.values(), *catalog.storage_gb_month.values(),
    ]  # fmt: skip
    for entry in entries:
        assert entry.source.strip(), entry
        assert _dated(entry.as_of), entry


@pytest.mark.parametrize("model_id", sorted(MODEL_IDS))
def test_computed_params_match_published(catalog: Catalog, model_id: str) -> None:
    model = catalog.model(model_id)
    assert model.published_total_params
    assert model.total_params == pytest.approx(model.published_total_params, rel=0.02)
    if model.published_active_params:
        assert model.active_params == pytest.approx(model.published_active_params, rel=0.10)


def test_moe_active_params(catalog: Catalog) -> None:
    mixtral = catalog.model("mixtral-8x22b")
    # 56 layers x (attention 88,080,384 + 2 of 8 experts x 301,989,888 + router) + embeddings
    assert mixtral.active_params == pytest.approx(39.16e9, rel=0.002)
    maverick = catalog.model("llama-4-maverick-17b-128e")
    assert maverick.total_params > 20 * maverick.active_params


def test_attention_patterns(catalog: Catalog) -> None:
    g270 = catalog.model("gemma-3-270m")
    assert (g270.sliding_window, g270.local_layers, g270.global_layers) == (512, 15, 3)
    g27 = catalog.model("gemma-3-27b")
    assert (g27.sliding_window, g27.local_layers, g27.global_layers, g27.head_dim) == (
        1024, 52, 10, 128
    )  # fmt: skip
    scout = catalog.model("llama-4-scout-17b-16e")
    assert (scout.local_layers, scout.global_layers) == (36, 12)
    mistral = catalog.model("mistral-7b")
    assert (mistral.local_layers, mistral.global_layers) == (32, 0)
    assert catalog.model("llama-3.1-70b").local_layers == 0


def test_gpu_format_rules(catalog: Catalog) -> None:
    t4 = catalog.gpu("t4")
    assert "bf16" not in t4.vllm_formats and not t4.has_bf16
    for gpu in catalog.gpus.values():
        if gpu.is_cpu:
            continue
        cc = gpu.compute_capability or 0
        # FP8 W8A8 compute needs Ada/Hopper (>= 8.9); below that FP8 is weight-only.
        assert (gpu.tflops_fp8 is not None) == (cc >= 8.9), gpu.id
        assert ("bf16" in gpu.vllm_formats) == (cc >= 8.0), gpu.id


def test_unknown_names_suggest_the_closest(catalog: Catalog) -> None:
    with pytest.raises(Exception, match=r"did you mean: llama-3\.1-70b"):
        catalog.model("llama-3.1-70")
    with pytest.raises(Exception, match="h100-80gb"):
        catalog.gpu("h100")
    with pytest.raises(Exception, match="q4_k_m"):
        catalog.format("q4km")


def test_gpus_per_node(catalog: Catalog) -> None:
    for row in catalog.node_sizes:
        assert row.gpu in catalog.gpus, row
        assert row.source.strip() and _dated(row.as_of), row
    assert catalog.gpus_per_node("t4", "gcp") == 4
    assert catalog.gpus_per_node("t4", "aws") == 8
    assert catalog.gpus_per_node("a100-40gb", "gcp") == 16
    assert catalog.gpus_per_node("h100-80gb", None) == 8
    assert catalog.gpus_per_node("a100-40gb", None) == 16  # the largest node offered
    assert catalog.gpus_per_node("l4", "runpod") == 8  # no row there: the largest node offered
    assert catalog.gpus_per_node("cpu", None) == 1
