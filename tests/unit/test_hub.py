"""Hugging Face repo ids in `llmhost plan`: config.json and safetensors headers from a local
stand-in of the hub (never the network), planned as the same config.json on disk is; quantized
repos plan their own format; every failure is one line naming the repo; the cache answers when
the hub cannot."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmhost.errors import UsageError
from llmhost.plan import Plan, plan_for
from llmhost.plan.hub import hub_model, parse_repo_id
from llmhost.plan.quantization import declared_format
from tests.support.hub import HubFile, HubStandIn, safetensors_file
from tests.unit.test_sources import LLAMA_8B_CONFIG

LLAMA: dict[str, Any] = {**LLAMA_8B_CONFIG, "torch_dtype": "bfloat16"}
AWQ: dict[str, Any] = {
    **LLAMA_8B_CONFIG,
    "torch_dtype": "float16",
    "quantization_config": {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 128,
        "version": "gemm",
        "zero_point": True,
    },
}
GPUS = ["l4", "h100-80gb"]
Tensors = dict[str, tuple[str, list[int]]]


def _linears(cfg: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """One Llama layer's projections: name -> (inputs, outputs)."""
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * h // cfg["num_attention_heads"]
    return {
        "self_attn.q_proj": (h, h),
        "self_attn.k_proj": (h, kv),
        "self_attn.v_proj": (h, kv),
        "self_attn.o_proj": (h, h),
        "mlp.gate_proj": (h, i),
        "mlp.up_proj": (h, i),
        "mlp.down_proj": (i, h),
    }


def llama_layer(cfg: dict[str, Any], n: int, awq_group: int = 0, dtype: str = "BF16") -> Tensors:
    """Layer `n` as transformers (16-bit) or AutoAWQ GEMM (packed int4, groups of `awq_group`
    inputs sharing a scale and a zero point) saves it."""
    h, p = cfg["hidden_size"], f"model.layers.{n}."
    dtype = "F16" if awq_group else dtype
    out: Tensors = {p + "input_layernorm.weight": (dtype, [h])}
    out[p + "post_attention_layernorm.weight"] = (dtype, [h])
    for name, (fan_in, fan_out) in _linears(cfg).items():
        if awq_group:
            out[p + name + ".qweight"] = ("I32", [fan_in, fan_out // 8])
            out[p + name + ".qzeros"] = ("I32", [fan_in // awq_group, fan_out // 8])
            out[p + name + ".scales"] = ("F16", [fan_in // awq_group, fan_out])
        else:
            out[p + name + ".weight"] = (dtype, [fan_out, fan_in])
    return out


def llama_ends(cfg: dict[str, Any], dtype: str) -> Tensors:
    """The token table, the final norm and lm_head."""
    v, h = cfg["vocab_size"], cfg["hidden_size"]
    return {
        "model.embed_tokens.weight": (dtype, [v, h]),
        "model.norm.weight": (dtype, [h]),
        "lm_head.weight": (dtype, [v, h]),
    }


def header_bytes(tensors: Tensors) -> int:
    """What the tensors weigh, by their dtype and shape."""
    width = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4}
    total = 0
    for dtype, shape in tensors.values():
        size = width[dtype]
        for dim in shape:
            size *= dim
        total += size
    return total


def add_llama(hub: HubStandIn, repo: str, shards: int = 4, dtype: str = "BF16") -> int:
    """A Llama-like bf16 repo in `shards` safetensors files with an index; its weights' bytes."""
    layers = LLAMA["num_hidden_layers"]
    files: dict[str, bytes | HubFile] = {"config.json": json.dumps(LLAMA).encode()}
    weight_map: dict[str, str] = {}
    total = 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors: Tensors = {}
        for n in range(s * layers // shards, (s + 1) * layers // shards):
            tensors |= llama_layer(LLAMA, n, dtype=dtype)
        if s == shards - 1:
            tensors |= llama_ends(LLAMA, dtype)
        files[name] = safetensors_file(tensors)
        weight_map |= dict.fromkeys(tensors, name)
        total += header_bytes(tensors)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    hub.add(repo, files)
    return total


def add_awq(hub: HubStandIn, repo: str, group: int = 128) -> int:
    """An AutoAWQ 4-bit Llama-like repo in one model.safetensors; its weights' bytes."""
    config = {**AWQ, "quantization_config": {**AWQ["quantization_config"], "group_size": group}}
    tensors = llama_ends(config, "F16")
    for n in range(config["num_hidden_layers"]):
        tensors |= llama_layer(config, n, awq_group=group)
    files: dict[str, bytes | HubFile] = {"config.json": json.dumps(config).encode()}
    files["model.safetensors"] = safetensors_file(tensors)
    hub.add(repo, files)
    return header_bytes(tensors)


def _comparable(plan: Any) -> dict[str, Any]:
    data = dataclasses.asdict(plan)
    for key in ("model", "model_source"):
        data.pop(key)
    data["requirements"].pop("model")
    return data


def test_repo_plans_as_its_config_json_on_disk(hub: HubStandIn, tmp_path: Path) -> None:
    size = add_llama(hub, "acme/llama-8b")
    folder = tmp_path / "Llama-8B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA))
    from_hub = plan_for("acme/llama-8b", gpus=GPUS, tokens_per_day=5e7)
    on_disk = plan_for(str(folder), gpus=GPUS, tokens_per_day=5e7)
    assert from_hub.model == "acme/llama-8b" and on_disk.model == "Llama-8B"
    assert _comparable(from_hub) == _comparable(on_disk)
    # The bytes the headers add up to are the weights planned for bf16 ...
    bf16 = [c for c in from_hub.candidates if c.quantization == "bf16"]
    assert bf16 and {c.weights_bytes for c in bf16} == {size}
    # ... and the weights were never downloaded: only ranged reads of the headers.
    reads = [(m, p, r) for m, p, r, _ in hub.requests if p.endswith(".safetensors")]
    assert reads and all(m == "GET" and r == "bytes=0-100000" for m, p, r in reads)
    # The plan names the repo at the commit it read, for render to fetch the same weights.
    assert from_hub.model_source == f"huggingface:acme/llama-8b@{hub.repos['acme/llama-8b'].commit}"


def test_weights_format_follows_the_files_dtype(hub: HubStandIn) -> None:
    size = add_llama(hub, "acme/llama-8b", shards=1)
    source = hub_model("acme/llama-8b")
    assert (source.file_format, source.file_weights_bytes, source.prequantized) == (
        "bf16",
        size,
        False,
    )
    assert source.spec.id == "acme/llama-8b" and source.spec.hf_repo == "acme/llama-8b"


def test_float32_files_of_a_bfloat16_config_are_not_bf16_bytes(hub: HubStandIn) -> None:
    # Files saved in float32 while config.json says bfloat16: vLLM loads bf16, half the files.
    size = add_llama(hub, "acme/llama-8b-f32", shards=2, dtype="F32")
    source = hub_model("acme/llama-8b-f32")
    assert (source.file_format, source.file_weights_bytes) == ("fp32", size)
    plan = plan_for("acme/llama-8b-f32", gpus=GPUS, quantizations=["bf16"])
    assert {c.weights_bytes for c in plan.candidates} == {size // 2}


def test_awq_repo_plans_only_awq_with_its_real_bytes(hub: HubStandIn) -> None:
    # Groups of 64: more scales than the catalog's AWQ (groups of 128) counts; the files say so.
    size = add_awq(hub, "acme/llama-8b-awq", group=64)
    plan = plan_for("acme/llama-8b-awq", gpus=GPUS)
    assert plan.recommendation is not None
    assert {c.quantization for c in plan.candidates} == {"awq"}
    assert plan.recommendation.weights_bytes == size
    estimate = plan_for("llama-3.1-8b", gpus=GPUS, quantizations=["awq"]).weights_bytes
    assert estimate == add_awq(hub, "acme/llama-8b-awq-128")  # groups of 128: the catalog's
    assert estimate < size < estimate * 1.05
    with pytest.raises(UsageError, match="holds awq weights"):
        plan_for("acme/llama-8b-awq", gpus=GPUS, quantizations=["bf16"])


@pytest.mark.parametrize(
    ("quant", "expected"),
    [
        ({"quant_method": "gptq", "bits": 4}, "gptq"),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8"),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g0": {"weights": {"num_bits": 8, "type": "float"}}},
            },
            "fp8",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g0": {"weights": {"num_bits": 8, "type": "int"}}},
            },
            "int8",
        ),
    ],
)
def test_quantization_config_names_the_format(quant: dict[str, Any], expected: str) -> None:
    found = declared_format({"torch_dtype": "bfloat16", "quantization_config": quant}, "x")
    assert (found.format, found.prequantized) == (expected, True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"quantization_config": {"quant_method": "bitsandbytes"}}, "'bitsandbytes' has no"),
        ({"quantization_config": {"quant_method": "gptq", "bits": 3}}, "3-bit weights"),
    ],
)
def test_quantization_without_a_catalog_format(config: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        declared_format(config, "acme/x")


def test_unquantized_config_names_its_dtype() -> None:
    assert declared_format({"torch_dtype": "float16"}, "x").format == "fp16"
    assert declared_format({"dtype": "bfloat16"}, "x").format == "bf16"
    assert declared_format({}, "x").format is None


def test_second_plan_needs_no_network(hub: HubStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    add_llama(hub, "acme/llama-8b")
    first = plan_for("acme/llama-8b", gpus=GPUS)
    hub.failing = 503  # the hub having trouble ...
    assert plan_for("acme/llama-8b", gpus=GPUS) == first
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())  # ... or no network at all
    assert plan_for("acme/llama-8b", gpus=GPUS) == first
    with pytest.raises(UsageError, match=r"acme/other: cannot reach .* not in llmhost's cache"):
        plan_for("acme/other", gpus=GPUS)


def test_catalog_id_and_local_folder_win_over_the_hub(
    hub: HubStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_awq(hub, "acme/llama-8b")  # what the hub would say: an AWQ checkpoint
    assert plan_for("llama-3.1-8b", gpus=GPUS).model == "llama-3.1-8b"
    local = tmp_path / "acme" / "llama-8b"
    local.mkdir(parents=True)
    (local / "config.json").write_text(json.dumps(LLAMA))
    monkeypatch.chdir(tmp_path)
    plan = plan_for("acme/llama-8b", gpus=GPUS)
    assert "bf16" in {c.quantization for c in plan.candidates}  # the folder's bf16 config
    assert hub.requests == []


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _plan_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmhost", "plan", *args, "--gpu", "l4", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("acme/missing", "Hugging Face repo acme/missing: not found"),
        ("acme/gated", "Hugging Face repo acme/gated: gated: accept its terms"),
        ("acme/readme-only", "Hugging Face repo acme/readme-only: no config.json"),
        ("acme/llama-8b@v9", "Hugging Face repo acme/llama-8b@v9: no revision 'v9'"),
        ("a/b/c", "'a/b/c' is not a local file or folder, nor a Hugging Face repo id: expected"),
        ("../x", "'../x' is not a local file or folder, nor a Hugging Face repo id: owner and"),
        ("acme/", "'acme/' is not a local file or folder, nor a Hugging Face repo id: expected"),
        ("/llama", "'/llama' is not a local file or folder, nor a Hugging Face repo id"),
        ("acme/x@", "'acme/x@' is not a local file or folder, nor a Hugging Face repo id: empty"),
    ],
)
def test_a_failed_repo_is_one_line_naming_it(hub: HubStandIn, name: str, message: str) -> None:
    add_llama(hub, "acme/llama-8b", shards=1)
    hub.add("acme/gated", {"config.json": json.dumps(LLAMA).encode()}, gated_token="hf_ok")
    hub.add("acme/readme-only", {"README.md": b"# GGUF files only\n"})
    assert message in _one_line(_plan_cli(name))


def test_gated_repo_plans_with_hf_token(hub: HubStandIn) -> None:
    hub.add("acme/gated", {"config.json": json.dumps(LLAMA).encode()}, gated_token="hf_ok")
    done = _plan_cli("acme/gated", HF_TOKEN="hf_ok")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] == "acme/gated"
    assert done.stderr == ""  # no progress bars or warnings around a plan
    assert {token for _, _, _, token in hub.requests} == {"hf_ok"}


def test_hub_down_is_one_line(hub: HubStandIn) -> None:
    line = _one_line(_plan_cli("acme/llama-8b", HF_ENDPOINT=_closed_port_url()))
    assert "Hugging Face repo acme/llama-8b: cannot reach http://127.0.0.1:" in line
    assert "not in llmhost's cache" in line


def test_parse_repo_id_keeps_the_revision() -> None:
    assert str(parse_repo_id("acme/llama-8b@refs/pr/1")) == "acme/llama-8b@refs/pr/1"
    assert parse_repo_id("Acme-AI/Llama_3.1-8B").revision is None


def test_render_fetches_the_planned_repo_at_the_commit_it_read(hub: HubStandIn) -> None:
    from llmhost.deploy.model import from_plan
    from llmhost.deploy.options import RenderOptions

    add_llama(hub, "acme/llama-8b", shards=1)
    commit = hub.repos["acme/llama-8b"].commit
    planned = plan_for("acme/llama-8b", gpus=["h100-80gb"], quantizations=["bf16"])
    plan = Plan.from_json(planned.to_json())  # as `render` reads it
    engine = from_plan(plan, RenderOptions())
    assert (engine.weights.kind, engine.weights.source) == ("hf", "acme/llama-8b")
    assert engine.weights.revision == commit
    # A pre-quantized repo is itself the checkpoint in its format.
    add_awq(hub, "acme/llama-8b-awq")
    awq = from_plan(plan_for("acme/llama-8b-awq", gpus=["l4"]), RenderOptions())
    assert (awq.weights.source, awq.launch.quantization) == ("acme/llama-8b-awq", "awq_marlin")


def test_render_of_a_16_bit_repo_planned_in_awq_asks_for_a_checkpoint(hub: HubStandIn) -> None:
    from llmhost.deploy.catalog import DeployError
    from llmhost.deploy.model import from_plan
    from llmhost.deploy.options import RenderOptions

    add_llama(hub, "acme/llama-8b", shards=1)
    plan = plan_for("acme/llama-8b", gpus=["l4"], quantizations=["awq"])
    with pytest.raises(DeployError, match="checkpoint already in awq; name one with --weights"):
        from_plan(plan, RenderOptions())
