"""The vLLM version the CPU tests run and the hashes of its converted weights (data/vllm.yaml)."""

from __future__ import annotations

import datetime
from functools import cache
from importlib.resources import files

import yaml
from pydantic import BaseModel, ConfigDict


class CpuBuild(BaseModel):
    """The CPU build of vLLM that llmhost installs and tests: package, versions, source, date."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    package: str
    version: str
    torch: str
    python: str
    source: str
    as_of: datetime.date


class VllmPins(BaseModel):
    """What `data/vllm.yaml` pins."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cpu: CpuBuild
    weights_sha256: dict[str, str]


@cache
def pins() -> VllmPins:
    """The pins, read once from the package data."""
    text = files("llmhost.engines").joinpath("data/vllm.yaml").read_text()
    return VllmPins.model_validate(yaml.safe_load(text))
