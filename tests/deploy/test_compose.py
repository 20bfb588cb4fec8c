"""`llmhost render --compose`: one host's Compose file, checked against the Compose
specification's models (compose-spec), with the same engine flags and gateway config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import compose_spec
import pytest
import yaml

from llmhost.config import Config
from llmhost.deploy.compose import render_compose
from llmhost.deploy.model import from_plan
from llmhost.engines import adapter
from tests.deploy.cases import CASES, GOLDEN, Case


def dropped(given: Any, parsed: Any, where: str = "") -> list[str]:
    """Paths in `given` that the spec's models did not keep: fields Compose does not know."""
    if isinstance(given, dict):
        if not isinstance(parsed, dict):
            return [where]
        return [
            p
            for k, v in given.items()
            for p in (
                [f"{where}.{k}"] if k not in parsed else dropped(v, parsed[k], f"{where}.{k}")
            )
        ]
    if isinstance(given, list) and isinstance(parsed, list):
        return [
            p
            for i, (a, b) in enumerate(zip(given, parsed, strict=False))
            for p in dropped(a, b, f"{where}[{i}]")
        ]
    return []


def check(document: dict[str, Any]) -> None:
    model = compose_spec.ComposeSpecification.model_validate(document)
    assert dropped(document, model.model_dump(exclude_none=True, by_alias=True, mode="json")) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_compose_follows_the_specification(case: Case) -> None:
    check(render_compose([case.plan], case.options))


def test_the_checker_notices_an_unknown_field() -> None:
    document = render_compose([CASES[2].plan], CASES[2].options)
    document["services"]["gateway"]["restart_policy"] = "always"  # not a service field
    with pytest.raises(AssertionError):
        check(document)


def test_one_host_runs_download_engine_gateway_redis_prometheus() -> None:
    case = CASES[0]
    document = render_compose([case.plan], case.options)
    services = document["services"]
    assert set(services) == {
        "download-gemma-3-12b",
        "engine-gemma-3-12b",
        "gateway",
        "redis",
        "prometheus",
    }
    engine = services["engine-gemma-3-12b"]
    assert engine["command"] == adapter("vllm").launch_args(
        from_plan(case.plan, case.options).launch
    )
    assert engine["depends_on"] == {
        "download-gemma-3-12b": {"condition": "service_completed_successfully"}
    }
    devices = engine["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    config = Config.model_validate(yaml.safe_load(document["configs"]["llmhost"]["content"]))
    assert config.models[0].urls == ("http://engine-gemma-3-12b:8000",)
    scrape = yaml.safe_load(document["configs"]["prometheus"]["content"])
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [
        "gateway:8000",
        "engine-gemma-3-12b:8000",
    ]


def test_cpu_host_needs_no_gpu(tmp_path: Path) -> None:
    plan = GOLDEN / "plans" / CASES[2].plan_file
    done = subprocess.run(
        [sys.executable, "-m", "llmhost", "render", str(plan), "--compose", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load((tmp_path / "docker-compose.yaml").read_text())
    check(document)
    assert "deploy" not in document["services"]["engine-gemma-3-270m"]
