"""The choices `llmhost render` leaves to the user, with the defaults a first cluster wants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmhost import __version__

Scaler = Literal["gateway", "keda"]


@dataclass(frozen=True)
class RenderOptions:
    """Namespace, provider, images and the optional parts (Ingress, KEDA, spot pools)."""

    namespace: str = "llmhost"
    provider: str | None = None  # gke, eks or generic; default: from the plan's price provider
    gateway_image: str = f"ghcr.io/llmhost/llmhost:{__version__}"
    gateway_replicas: int = 2
    scaler: Scaler = "gateway"  # who sets engine replicas: the gateway, or a KEDA ScaledObject
    scale_to_zero: bool = False
    idle_to_zero_s: float = 900.0
    redis_url: str | None = None  # external Redis; None runs one in the namespace
    storage_class: str | None = None  # for the weights volume (must offer ReadWriteMany)
    ingress_host: str | None = None
    ingress_class: str = "nginx"
    cluster_issuer: str = "letsencrypt"  # cert-manager ClusterIssuer for the Ingress' TLS
    monitoring_namespace: str = "monitoring"  # where Prometheus runs (may scrape engines)
    engine: str | None = None  # override the plan's engine (vllm, llamacpp, ollama)
    weights: str | None = None  # checkpoint: HF repo id, hf://owner/repo/file.gguf, ollama://tag
