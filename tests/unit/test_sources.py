"""Models from config.json and GGUF files, including the embedded model's real GGUF."""

import json
from pathlib import Path

import numpy as np
import pytest

from llmhost.errors import ModelFileError
from llmhost.plan.catalog import Catalog
from llmhost.plan.sources import read_gguf, read_hf_config, resolve_model

LLAMA_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
}


def test_config_json_matches_catalog(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_8B_CONFIG))
    spec = read_hf_config(path)
    assert spec.total_params == catalog.model("llama-3.1-8b").total_params
    assert spec.head_dim == 128 and spec.local_layers == 0
    assert resolve_model(str(tmp_path), catalog).spec.total_params == spec.total_params


def test_gemma3_multimodal_config_reads_text_config(tmp_path: Path, catalog: Catalog) -> None:
    text = {
        "model_type": "gemma3_text",
        "hidden_size": 5376,
        "intermediate_size": 21504,
        "num_attention_heads": 32,
        "num_hidden_layers": 62,
        "num_key_value_heads": 16,
        "head_dim": 128,
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
        "sliding_window": 1024,
        "sliding_window_pattern": 6,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "gemma3", "text_config": text}))
    spec = read_hf_config(path)
    ref = catalog.model("gemma-3-27b")
    assert (spec.local_layers, spec.global_layers, spec.head_dim) == (52, 10, 128)
    assert spec.total_params == ref.total_params - ref.extra_params


def test_llama4_config_layer_types(tmp_path: Path, catalog: Catalog) -> None:
    text = {
        "model_type": "llama4_text",
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_attention_heads": 40,
        "num_hidden_layers": 48,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 202048,
        "max_position_embeddings": 10485760,
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "attention_chunk_size": 8192,
        "no_rope_layers": [1, 1, 1, 0] * 12,
        "tie_word_embeddings": False,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama4", "text_config": text}))
    spec = read_hf_config(path)
    ref = catalog.model("llama-4-scout-17b-16e")
    assert spec.total_params == ref.total_params - ref.extra_params
    assert spec.active_params == ref.active_params
    assert (spec.local_layers, spec.global_layers) == (36, 12)


def test_config_missing_field_is_named(tmp_path: Path) -> None:
    cfg = dict(LLAMA_8B_CONFIG)
    del cfg["num_attention_heads"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match=r"config.json: missing field 'num_attention_heads'"):
        read_hf_config(path)
    path.write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        read_hf_config(path)


def _write_gguf(path: Path, fields: dict[str, int]) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    for key, value in fields.items():
        writer.add_uint32(key, value)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_metadata_and_missing_field(tmp_path: Path) -> None:
    fields = {
        "llama.block_count": 2,
        "llama.embedding_length": 8,
        "llama.feed_forward_length": 16,
        "llama.attention.head_count": 2,
        "llama.attention.head_count_kv": 1,
        "llama.context_length": 128,
        "llama.vocab_size": 16,
    }
    good = tmp_path / "tiny.gguf"
    _write_gguf(good, fields)
    source = read_gguf(good)
    assert (source.spec.layers, source.spec.kv_heads, source.spec.head_dim) == (2, 1, 4)
    assert source.file_weights_bytes == 16 * 8 * 4
    del fields["llama.attention.head_count"]
    bad = tmp_path / "bad.gguf"
    _write_gguf(bad, fields)
    with pytest.raises(ModelFileError, match=r"bad\.gguf: missing field 'llama\.attention\."):
        read_gguf(bad)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelFileError, match=r"junk\.gguf"):
        read_gguf(junk)


def test_embedded_gguf_reads_like_the_catalog(catalog: Catalog) -> None:
    from llmhost.engines.weights import embedded_gguf

    source = read_gguf(embedded_gguf())
    ref = catalog.model("gemma-3-270m")
    assert source.file_format == "q4_k_m"
    assert source.file_weights_bytes == 246_587_904
    assert (source.spec.local_layers, source.spec.global_layers) == (15, 3)
    assert source.spec.total_params == ref.total_params


def test_a_gguf_header_is_read_once_and_reread_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from llmhost.plan import sources

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fields = {
        "llama.block_count": 2,
        "llama.embedding_length": 8,
        "llama.feed_forward_length": 16,
        "llama.attention.head_count": 2,
        "llama.attention.head_count_kv": 1,
        "llama.context_length": 128,
        "llama.vocab_size": 16,
    }
    path = tmp_path / "tiny.gguf"
    _write_gguf(path, fields)
    first = read_gguf(path)
    reads = []
    real = sources._read_gguf
    monkeypatch.setattr(sources, "_read_gguf", lambda p: reads.append(p) or real(p))
    assert read_gguf(path) == first and reads == []  # from the cache
    fields["llama.block_count"] = 3
    _write_gguf(path, fields)
    os.utime(path, ns=(1, 2_000_000_000))  # a different file: other mtime
    assert read_gguf(path).spec.layers == 3 and reads == [path]
