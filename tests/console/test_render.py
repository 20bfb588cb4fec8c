"""Cluster renders leave the console off (the gateway listens on 0.0.0.0) unless `--console`."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from llmhost.config import Config
from llmhost.deploy.kubernetes import render
from tests.deploy.cases import CASES


def gateway_config(objects: list[dict[str, Any]]) -> Config:
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "llmhost.yaml" in obj.get("data", {}):
            return Config.model_validate(yaml.safe_load(obj["data"]["llmhost.yaml"]))
    raise AssertionError("no gateway ConfigMap rendered")


def test_a_cluster_render_serves_the_console_only_when_asked() -> None:
    case = CASES[0]
    plain = gateway_config(render([case.plan], case.options))
    assert plain.server.console is None and not plain.server.console_on()
    asked = gateway_config(render([case.plan], dataclasses.replace(case.options, console=True)))
    assert asked.server.console is True and asked.server.console_on()
