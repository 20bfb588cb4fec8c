"""Engine adapters: launch arguments and what their metrics pages say about load."""

from __future__ import annotations

import pytest

from llmhost.engines import ADAPTERS, LaunchSpec, Load, adapter
from llmhost.engines.llamacpp import chat_template_args
from llmhost.engines.replicas import Replica
from llmhost.errors import UsageError
from llmhost.gateway.router.round_robin import RoundRobin

SPEC = LaunchSpec(weights="/m/gemma.gguf", served_name="gemma", context=2048, parallel=4,
                  port=41000, chat_template="gemma", threads=2)  # fmt: skip

# Pages as each engine prints them (llama-server captured here; vLLM and TGI from their docs).
LLAMACPP_PAGE = """# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 3
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""
VLLM_PAGE = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 7.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
"""
TGI_PAGE = """# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 5
# TYPE tgi_queue_size gauge
tgi_queue_size 9
"""


def test_llamacpp_args_split_context_over_slots() -> None:
    args = adapter("llamacpp").launch_args(SPEC)
    assert args[:2] == ["--model", "/m/gemma.gguf"]
    assert args[args.index("--ctx-size") + 1] == str(2048 * 4)
    assert args[args.index("--parallel") + 1] == "4"
    assert "--metrics" in args
    assert args[args.index("--port") + 1] == "41000"
    assert args[-3:] == ["--no-jinja", "--chat-template", "gemma"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("gemma", ["--no-jinja", "--chat-template", "gemma"]),
        ("/t/gemma.jinja", ["--jinja", "--chat-template-file", "/t/gemma.jinja"]),
        ("{{ messages }}", ["--jinja", "--chat-template", "{{ messages }}"]),
    ],
)
def test_chat_template_forms(template: str, expected: list[str]) -> None:
    assert chat_template_args(template) == expected


def test_vllm_args() -> None:
    spec = LaunchSpec(weights="google/gemma-3-12b-it", served_name="g", context=8192, parallel=64,
                      tensor_parallel=2, quantization="awq", kv_cache_dtype="fp8",
                      dtype="float16", gpu_memory_utilization=0.9)  # fmt: skip
    args = adapter("vllm").launch_args(spec)
    assert args[:2] == ["serve", "google/gemma-3-12b-it"]

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--max-model-len") == "8192" and value("--tensor-parallel-size") == "2"
    assert value("--quantization") == "awq" and value("--dtype") == "float16"
    assert value("--kv-cache-dtype") == "fp8" and value("--gpu-memory-utilization") == "0.9"
    assert "--enable-prefix-caching" in args


def test_ollama_env_and_openai_not_launchable() -> None:
    env = adapter("ollama").launch_env(SPEC)
    assert env["OLLAMA_HOST"] == "127.0.0.1:41000" and env["OLLAMA_NUM_PARALLEL"] == "4"
    with pytest.raises(UsageError, match="needs 'urls'"):
        adapter("openai").launch_args(SPEC)


@pytest.mark.parametrize(
    ("kind", "page", "load"),
    [
        ("llamacpp", LLAMACPP_PAGE, Load(3, 1, None)),
        ("vllm", VLLM_PAGE, Load(7, 2, 0.42)),
        ("tgi", TGI_PAGE, Load(5, 9, None)),
        ("vllm", LLAMACPP_PAGE, None),
        ("ollama", "", None),
        ("openai", VLLM_PAGE, None),
    ],
)
def test_read_load(kind: str, page: str, load: Load | None) -> None:
    assert adapter(kind).read_load(page) == load


def test_every_adapter_has_urls() -> None:
    for kind, a in ADAPTERS.items():
        assert a.kind == kind
        assert a.health_path.startswith("/") and a.ready_path.startswith("/")


def test_unknown_engine() -> None:
    with pytest.raises(UsageError, match="unknown engine 'vlm'; did you mean: vllm"):
        adapter("vlm")


def test_round_robin_cycles_and_skips_excluded() -> None:
    replicas = [Replica(id=str(i), url=f"http://r{i}") for i in range(3)]
    rr = RoundRobin()
    assert [rr.pick(b"", replicas).id for _ in range(4)] == ["0", "1", "2", "0"]  # type: ignore[union-attr]
    assert rr.pick(b"", replicas, exclude=[replicas[1], replicas[2]]) is replicas[0]
    assert rr.pick(b"", replicas, exclude=replicas) is None
    assert rr.pick(b"", []) is None
