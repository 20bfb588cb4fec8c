"""llmhost.yaml and environment overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmhost.config import load_config
from llmhost.errors import UsageError


def test_no_file_serves_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert [m.name for m in config.models] == ["gemma-3-270m"]
    model = config.models[0]
    assert model.weights == "embedded" and model.chat_template == "gemma" and model.managed
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8000)
    assert config.server.max_body_bytes == 1024 * 1024


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "llmhost.yaml"
    path.write_text(
        "server: {port: 9000}\n"
        "models:\n"
        "  - {name: big, engine: vllm, urls: ['http://10.0.0.5:8000'], aliases: [quality]}\n"
    )
    config = load_config(path, environ={"LLMHOST_PORT": "9100", "LLMHOST_TOTAL_TIMEOUT_S": "30"})
    assert config.server.port == 9100 and config.server.total_timeout_s == 30
    assert config.models[0].aliases == ("quality",) and not config.models[0].managed


def test_config_from_env_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models: [{name: x, weights: /m.gguf}]\n")
    assert load_config(environ={"LLMHOST_CONFIG": str(path)}).models[0].name == "x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [{name: a, engine: tgi, weights: x}]", "engine 'tgi' runs outside llmhost"),
        ("models: [{name: a, weights: x, urls: ['http://h']}]", "not 'weights' and 'urls'"),
        (
            "models: [{name: a, urls: ['http://h'], kubernetes: {deployment: a}}]",
            "not 'urls' and 'kubernetes'",
        ),
        ("models: [{name: a}]", "give 'weights'"),
        ("models: [{name: a, kubernetes: {deployment: ''}}]", "models.0.kubernetes.deployment"),
        (
            "models: [{name: a, kubernetes: {deployment: a, scale: false}, min_replicas: 0, "
            "idle_to_zero_s: 60}]",
            "needs min_replicas: 0 and a model llmhost scales",
        ),
        ("models: [{name: a, urls: ['ftp://h']}]", "must start with http"),
        ("models: [{name: a, weights: x}, {name: b, weights: y, aliases: [a]}]", "used twice"),
        ("models: [{name: a, weights: x, replicas: -1}]", "models.0.replicas"),
        ("models: [{name: a, weights: x, engine: magic}]", "models.0.engine"),
        ("models: [{name: a, weights: x, colour: red}]", "models.0.colour"),
        ("server: {port: 99999}\nmodels: [{name: a, weights: x}]", "server.port"),
        ("models: [", "not valid YAML"),
        ("- just a list", "expected a mapping"),
        ("models: [{name: a, weights: x, replicas: 5, max_replicas: 2}]", "within min_replicas"),
        ("models: [{name: a, weights: x, idle_to_zero_s: 5}]", "needs min_replicas: 0"),
        ("models: [{name: a, weights: x, routing: random}]", "models.0.routing"),
        ("models: [{name: a, weights: x, fallback: [b]}]", "fallback 'b' is not a model"),
        ("models: [{name: a, weights: x}]\ntiers: {fast: [z]}", "'z' is not a model"),
        ("models: [{name: a, weights: x}]\ntiers: {a: [a]}", "name of a model"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "llmhost.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(message)):
        load_config(path, environ={})


def test_bad_environment_value(tmp_path: Path) -> None:
    path = tmp_path / "llmhost.yaml"
    path.write_text("models: [{name: a, weights: x}]")
    with pytest.raises(UsageError, match=r"server\.port"):
        load_config(path, environ={"LLMHOST_PORT": "eighty"})


def test_a_cluster_model_scales_through_its_deployment(tmp_path: Path) -> None:
    path = tmp_path / "llmhost.yaml"
    path.write_text(
        "models: [{name: llama, engine: vllm, min_replicas: 0, max_replicas: 4, "
        "idle_to_zero_s: 600, kubernetes: {deployment: llama-engine, port: 8000}}]"
    )
    model = load_config(path, environ={}).models[0]
    assert model.kubernetes is not None and model.kubernetes.service is None
    assert model.scalable and not model.managed


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "llmhost.yaml"
    config = load_config(example, environ={})
    assert config.models[0].replicas == 2 and config.models[0].weights == "embedded"


def test_the_embedded_model_says_it_is_a_base_model() -> None:
    from llmhost.config import Config, embedded_model
    from llmhost.gateway.server import banner

    model = embedded_model()
    assert model.description and "base model" in model.description
    text = banner("http://127.0.0.1:8000", Config(models=(model,)))
    assert "base model" in text and "max_tokens" in text
