"""Where a model's architecture comes from: the catalog, a Hugging Face config.json (a local file
or folder, or a repo on the hub), or a GGUF file.

`resolve_model` takes what the user typed (`llama-3.1-70b`, `./config.json`, `model.gguf`,
`owner/repo[@revision]`) and returns a `ModelSource`: the architecture, the format the weights
are in and, for a GGUF file or a hub repo's safetensors, the exact bytes of its weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmhost.errors import ModelFileError, UsageError
from llmhost.paths import cache_dir
from llmhost.plan.architecture import LayerKind, ModelSpec
from llmhost.plan.catalog import Catalog
from llmhost.plan.quantization import declared_format

# general.file_type values (llama.cpp's llama_ftype) that match a catalog weight format.
GGUF_FILE_TYPES = {0: "fp32", 1: "fp16", 7: "q8_0", 15: "q4_k_m", 17: "q5_k_m", 32: "bf16"}
# Architectures whose sliding-window pattern llama.cpp fixes in code rather than in metadata.
GGUF_SWA_PATTERN = {"gemma3": 6, "gemma2": 2, "cohere2": 4, "llama4": 4}
GEMMA_TYPES = ("gemma", "gemma2", "gemma3", "gemma3_text")


@dataclass(frozen=True)
class ModelSource:
    """A model to plan: its architecture, the format its weights are in and, when known (a GGUF
    file, a hub repo's safetensors headers), their exact size. `prequantized`: the weights exist
    only in `file_format` (AWQ, GPTQ, FP8, INT8 checkpoints), so no other format is planned."""

    spec: ModelSpec
    path: Path | None = None
    file_format: str | None = None
    file_weights_bytes: int | None = None
    prequantized: bool = False
    # Where a deployment fetches these weights, when not from the catalog: a hub repo pinned to
    # the commit that was read (`huggingface:owner/repo@commit`; see `hub_origin`).
    origin: str | None = None


def resolve_model(name: str, catalog: Catalog) -> ModelSource:
    """A GGUF path, a config.json path (or a folder holding one), a catalog id, or a Hugging
    Face repo id `owner/repo[@revision]`, tried in that order: local files win over ids, and a
    catalog id over a repo id."""
    path = Path(name)
    if name.lower().endswith(".gguf"):
        return read_gguf(path)
    if name.lower().endswith(".json") or path.is_dir():
        return read_hf_source(path)
    if name.lower() in catalog.models or "/" not in name:
        return ModelSource(spec=catalog.model(name))
    from llmhost.plan.hub import hub_model  # imported here: it pulls huggingface_hub

    return hub_model(name)


HUB_ORIGIN = "huggingface:"


def hub_origin(model_source: str) -> tuple[str, str | None] | None:
    """The hub repo and revision a plan's `model_source` names (`huggingface:owner/repo@rev`),
    or None when its model came from the catalog or a local file."""
    if not model_source.startswith(HUB_ORIGIN):
        return None
    repo, _, revision = model_source.removeprefix(HUB_ORIGIN).partition("@")
    return repo, revision or None


def formats_to_plan(source: ModelSource, asked: list[str] | None) -> list[str] | None:
    """The weight formats to plan: those asked for, or only the checkpoint's own when its
    weights are pre-quantized (asking for another format of such a checkpoint is an error)."""
    own = source.file_format
    if not source.prequantized or own is None:
        return asked
    other = [q for q in asked or [] if q.lower() != own]
    if other:
        raise UsageError(
            f"--quant {other[0]}: {source.spec.id} holds {own} weights (its quantization_config);"
            f" plan it with --quant {own}, or plan a 16-bit checkpoint of the model"
        )
    return asked or [own]


def _require(cfg: dict[str, Any], key: str, path: Path) -> Any:
    if key not in cfg or cfg[key] is None:
        raise ModelFileError(str(path), f"missing field '{key}'")
    return cfg[key]


def _layer_types_from_config(cfg: dict[str, Any], layers: int) -> tuple[LayerKind, ...] | None:
    """Local/global layers when the config lists them (`layer_types`, Llama 4 `no_rope_layers`)."""
    if isinstance(cfg.get("layer_types"), list):
        return tuple("full" if str(t).startswith("full") else "sliding" for t in cfg["layer_types"])
    if isinstance(cfg.get("no_rope_layers"), list) and cfg.get("attention_chunk_size"):
        # 1 = RoPE layer with chunked (local) attention, 0 = NoPE global layer.
        return tuple("sliding" if flag else "full" for flag in cfg["no_rope_layers"][:layers])
    return None


def read_hf_source(path: Path) -> ModelSource:
    """A model from a Hugging Face config.json (or a folder holding one): its architecture and
    the weight format its `quantization_config` or dtype declares."""
    file = path / "config.json" if path.is_dir() else path
    raw = _load_config(file)
    declared = declared_format(raw, str(file))
    return ModelSource(
        spec=_spec_from_config(raw, file),
        path=path,
        file_format=declared.format,
        prequantized=declared.prequantized,
    )


def read_hf_config(path: Path) -> ModelSpec:
    """The architecture in a Hugging Face config.json (multimodal configs: their text_config)."""
    file = path / "config.json" if path.is_dir() else path
    return _spec_from_config(_load_config(file), file)


def _load_config(file: Path) -> dict[str, Any]:
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        raise ModelFileError(str(file), "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(str(file), f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelFileError(str(file), "expected a JSON object")
    return raw


def _spec_from_config(raw: dict[str, Any], file: Path) -> ModelSpec:
    cfg: dict[str, Any] = {**raw, **raw.get("text_config", {})}
    model_type = str(cfg.get("model_type", ""))
    layers = int(_require(cfg, "num_hidden_layers", file))
    hidden = int(_require(cfg, "hidden_size", file))
    heads = int(_require(cfg, "num_attention_heads", file))
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or 0)
    is_llama4_style = "intermediate_size_mlp" in cfg
    if experts and is_llama4_style:
        dense_inter = int(cfg["intermediate_size_mlp"])
        expert_inter = int(_require(cfg, "intermediate_size", file))
    else:
        dense_inter = int(_require(cfg, "intermediate_size", file))
        expert_inter = int(cfg.get("moe_intermediate_size") or dense_inter) if experts else 0
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    window = cfg.get("attention_chunk_size") or window
    layer_types = _layer_types_from_config(cfg, layers) if window else None
    pattern = cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern")
    shared = cfg.get("n_shared_experts")
    if shared is None:
        shared = 1 if experts and is_llama4_style else 0
    return ModelSpec(
        id=str(raw.get("_name_or_path") or file.parent.name or file.stem),
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        intermediate_size=dense_inter,
        vocab_size=int(_require(cfg, "vocab_size", file)),
        max_context=int(_require(cfg, "max_position_embeddings", file)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", model_type in GEMMA_TYPES)),
        attention_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        sliding_window=int(window) if window else None,
        global_every=int(pattern) if window and pattern and not layer_types else None,
        experts=experts,
        experts_per_token=int(cfg.get("num_experts_per_tok") or 0),
        shared_experts=int(shared),
        expert_intermediate_size=expert_inter,
        moe_every=int(cfg.get("interleave_moe_layer_step") or 1),
        norms_per_layer=4 if model_type.startswith("gemma") else 2,
        qk_norm=model_type.startswith("gemma3"),
        source=str(file),
        layer_types=layer_types or (),
    )


def _gguf_value(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    if isinstance(value, list):
        return max(value) if value and all(isinstance(v, int | float) for v in value) else value
    return value


def read_gguf(path: Path) -> ModelSource:
    """The architecture in a GGUF file's metadata, and its weights' exact size.

    Reading a GGUF's metadata means walking its tokenizer arrays (20-40 s for a small model on
    this machine), so what was read is cached under the cache folder, keyed by the file's path,
    size and modification time: the next plan of the same file reads a small JSON file.
    """
    if not path.is_file():
        raise ModelFileError(str(path), "no such file")
    stat = path.stat()
    cache = source_cache("gguf-headers", f"{path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}")
    cached = load_source(cache)
    if cached is not None:
        return dataclasses.replace(cached, path=path)
    found = _read_gguf(path)
    store_source(cache, found)
    return found


def source_cache(folder: str, key: str) -> Path:
    """The file under the cache folder's `folder` that keeps what was read for `key`."""
    return cache_dir() / folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def load_source(cache: Path) -> ModelSource | None:
    """The ModelSource kept in `cache`, or None when there is none (or one from another version)."""
    try:
        data = json.loads(cache.read_text())
        spec = data["spec"]
        spec["layer_types"] = tuple(spec["layer_types"])
        return ModelSource(
            ModelSpec(**spec),
            Path(data["path"]) if data.get("path") else None,
            data["file_format"],
            data["weights_bytes"],
            bool(data.get("prequantized", False)),
            data.get("origin"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or one from another version: read the source again


def store_source(cache: Path, source: ModelSource) -> None:
    """Keep `source` in `cache` (a cache that cannot be written only costs a later read)."""
    data = {
        "spec": dataclasses.asdict(source.spec),
        "path": str(source.path) if source.path else None,
        "file_format": source.file_format,
        "weights_bytes": source.file_weights_bytes,
        "prequantized": source.prequantized,
        "origin": source.origin,
    }
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(cache)
    except OSError:
        pass


def _read_gguf(path: Path) -> ModelSource:
    from gguf import GGUFReader  # imported here: it pulls numpy, which plain plans do not need

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # the gguf package raises bare ValueError/struct errors
        raise ModelFileError(str(path), f"not a readable GGUF file ({exc})") from None
    arch = _gguf_value(reader, "general.architecture")
    if not arch:
        raise ModelFileError(str(path), "missing field 'general.architecture'")

    def need(key: str) -> Any:
        value = _gguf_value(reader, f"{arch}.{key}")
        if value is None:
            raise ModelFileError(str(path), f"missing field '{arch}.{key}'")
        return value

    hidden, heads = int(need("embedding_length")), int(need("attention.head_count"))
    vocab = _gguf_value(reader, f"{arch}.vocab_size")
    if vocab is None:
        tokens = reader.fields.get("tokenizer.ggml.tokens")
        if tokens is None:
            raise ModelFileError(str(path), f"missing field '{arch}.vocab_size'")
        vocab = len(tokens.data)
    window = _gguf_value(reader, f"{arch}.attention.sliding_window")
    pattern = _gguf_value(reader, f"{arch}.attention.sliding_window_pattern")
    if not isinstance(pattern, int):
        pattern = GGUF_SWA_PATTERN.get(arch)
    names = {t.name for t in reader.tensors}
    experts = int(_gguf_value(reader, f"{arch}.expert_count") or 0)
    spec = ModelSpec(
        id=str(_gguf_value(reader, "general.name") or path.stem),
        layers=int(need("block_count")),
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=int(_gguf_value(reader, f"{arch}.attention.head_count_kv") or heads),
        head_dim=int(_gguf_value(reader, f"{arch}.attention.key_length") or hidden // heads),
        intermediate_size=int(need("feed_forward_length")),
        vocab_size=int(vocab),
        max_context=int(need("context_length")),
        tie_embeddings="output.weight" not in names,
        sliding_window=int(window) if window else None,
        global_every=pattern if window else None,
        experts=experts,
        experts_per_token=int(_gguf_value(reader, f"{arch}.expert_used_count") or 0),
        shared_experts=int(_gguf_value(reader, f"{arch}.expert_shared_count") or 0),
        expert_intermediate_size=int(
            _gguf_value(reader, f"{arch}.expert_feed_forward_length") or 0
        ),
        norms_per_layer=4 if arch in GEMMA_TYPES else 2,
        qk_norm=arch == "gemma3",
        source=str(path),
        published_total_params=sum(int(t.n_elements) for t in reader.tensors),
    )
    file_type = _gguf_value(reader, "general.file_type")
    return ModelSource(
        spec=spec,
        path=path,
        file_format=GGUF_FILE_TYPES.get(int(file_type)) if file_type is not None else None,
        file_weights_bytes=sum(int(t.n_bytes) for t in reader.tensors),
    )
