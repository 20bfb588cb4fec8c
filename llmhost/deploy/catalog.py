"""What rendering needs to know about clusters: GPU node labels per provider, pinned images and
how plan formats map to vLLM flags. The data is `data/accelerators.yaml`, with its sources."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from llmhost.errors import UnknownChoiceError, UsageError

FLAVOURS = ("gke", "eks", "generic")


class DeployError(UsageError):
    """A plan or option that cannot be rendered into manifests, explained."""


@dataclass(frozen=True)
class ClusterCatalog:
    """Node labels (GPU type, spot capacity), images, vLLM quantization flags and its
    multi-node bootstrap, as read from the data file."""

    label_keys: dict[str, str]
    gpus: dict[str, dict[str, str | None]]
    extra_labels: dict[str, dict[str, dict[str, str]]]
    providers: dict[str, str]
    images: dict[str, str]
    vllm_quantization: dict[str, dict[str, Any]]
    spot: dict[str, dict[str, Any]]  # flavour -> label, spot value, on_demand value, taint
    ray_helper: str  # the vLLM image's multi-node bootstrap command

    def flavour(self, provider: str | None) -> str:
        """The node-label flavour for a plan provider or an explicit flavour name."""
        if provider is None:
            return "generic"
        if provider in FLAVOURS:
            return provider
        return self.providers.get(provider, "generic")

    def node_selector(self, gpu: str, flavour: str) -> dict[str, str]:
        """Labels that put a pod on a node with GPU `gpu` in a `flavour` cluster."""
        if flavour not in FLAVOURS:
            raise UnknownChoiceError("provider", flavour, FLAVOURS)
        if gpu not in self.gpus:
            raise UnknownChoiceError("GPU for node labels", gpu, self.gpus)
        value = self.gpus[gpu].get(flavour)
        if not value:
            offered = [f for f in FLAVOURS if self.gpus[gpu].get(f)]
            raise DeployError(
                f"{flavour} has no node label for GPU '{gpu}'; use --provider "
                f"{' or '.join(offered)}"
            )
        return {self.label_keys[flavour]: value, **self.extra_labels.get(flavour, {}).get(gpu, {})}

    def quantization_flag(self, fmt: str, compute_capability: float | None) -> str | None:
        """vLLM's --quantization for a plan format on a GPU, or None when the checkpoint says."""
        rule = self.vllm_quantization.get(fmt)
        if rule is None:
            return None
        marlin, floor = rule.get("marlin"), rule.get("marlin_min_cc", 0.0)
        if marlin and compute_capability is not None and compute_capability >= floor:
            return str(marlin)
        flag = rule["flag"]
        return None if flag is None else str(flag)

    def prequantized(self, fmt: str) -> bool:
        """True when weights in `fmt` must come from a checkpoint already in that format."""
        return bool(self.vllm_quantization.get(fmt, {}).get("prequantized"))


@cache
def cluster_catalog() -> ClusterCatalog:
    """The shipped cluster data (read once)."""
    data = yaml.safe_load(files("llmhost.deploy").joinpath("data/accelerators.yaml").read_text())
    return ClusterCatalog(
        label_keys=data["label_keys"],
        gpus=data["gpus"],
        extra_labels=data.get("extra_labels", {}),
        providers=data["providers"],
        images=data["images"],
        vllm_quantization=data["vllm_quantization"],
        spot=data["spot"],
        ray_helper=data["ray_helper"],
    )
