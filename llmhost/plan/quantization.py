"""Which catalog weight format a Hugging Face config.json declares for its checkpoint.

A `quantization_config` (AWQ, GPTQ, FP8, compressed-tensors) means the weights exist only in
that format: vLLM reads them as they are and cannot turn them into another format. Without one,
the checkpoint holds 16- or 32-bit weights (`torch_dtype`, newer configs: `dtype`), from which
vLLM can also quantize (FP8) or a pre-quantized sibling checkpoint can be used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmhost.errors import ModelFileError

# config.json dtype names and safetensors dtype names, as catalog weight formats.
CONFIG_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
SAFETENSORS_DTYPES = {"BF16": "bf16", "F16": "fp16", "F32": "fp32"}
KNOWN_METHODS = "awq, gptq, fp8 and compressed-tensors"
# compressed-tensors weight schemes (bits, type): FP8 and INT8 W8A8; 4-bit integer W4A16, which
# vLLM runs with the Marlin kernels GPTQ uses, at GPTQ's bits per weight.
COMPRESSED_SCHEMES = {(8, "float"): "fp8", (8, "int"): "int8", (4, "int"): "gptq"}


@dataclass(frozen=True)
class DeclaredFormat:
    """A checkpoint's weight format (a catalog id, or None when the config does not say) and
    whether the weights exist only in it (pre-quantized)."""

    format: str | None
    prequantized: bool = False


def declared_format(config: dict[str, Any], where: str) -> DeclaredFormat:
    """The weight format `config` (a config.json's object) declares; `where` names it in errors."""
    quant = config.get("quantization_config")
    if isinstance(quant, dict):
        return DeclaredFormat(_quantized(quant, where), prequantized=True)
    text = config.get("text_config")
    dtype = config.get("torch_dtype") or config.get("dtype")
    if dtype is None and isinstance(text, dict):
        dtype = text.get("torch_dtype") or text.get("dtype")
    return DeclaredFormat(CONFIG_DTYPES.get(str(dtype)))


def _quantized(quant: dict[str, Any], where: str) -> str:
    method = str(quant.get("quant_method") or "").lower()
    if method in ("awq", "gptq"):
        bits = quant.get("bits", quant.get("w_bit", 4))
        if bits != 4:
            raise ModelFileError(where, f"{method} with {bits}-bit weights: the catalog has 4-bit")
        return method
    if method == "fp8":
        return "fp8"
    if method == "compressed-tensors":
        return _compressed_tensors(quant, where)
    raise ModelFileError(
        where,
        f"quantization '{method or '?'}' has no catalog weight format ({KNOWN_METHODS} have)",
    )


def _compressed_tensors(quant: dict[str, Any], where: str) -> str:
    """The catalog format of a compressed-tensors checkpoint's weight scheme."""
    groups = quant.get("config_groups")
    schemes = [g.get("weights") for g in groups.values()] if isinstance(groups, dict) else []
    weights = next((w for w in schemes if isinstance(w, dict)), None)
    if weights is None:
        raise ModelFileError(where, "compressed-tensors quantization_config without weights")
    bits, kind = weights.get("num_bits"), weights.get("type")
    found = COMPRESSED_SCHEMES.get((bits, str(kind))) if isinstance(bits, int) else None
    if found is None:
        raise ModelFileError(
            where, f"compressed-tensors {bits}-bit {kind} weights have no catalog weight format"
        )
    return found
