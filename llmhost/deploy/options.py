"""The choices `llmhost render` leaves to the user, with the defaults a first cluster wants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmhost import __version__

Scaler = Literal["gateway", "keda"]
DcgmMonitor = Literal["service", "pod"]


@dataclass(frozen=True)
class RenderOptions:
    """Namespace, provider, images, replicas, node placement and the optional parts (Ingress,
    TLS, KEDA, spot pools, monitoring, Gateway API)."""

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
    # Replicas: None = from the plan (N, or N+1 with `production`; at least 1, 2 in production).
    min_replicas: int | None = None
    max_replicas: int | None = None
    production: bool = False
    on_demand_base: int = 0  # spot plans: this many replicas stay on on-demand nodes
    drain_s: int | None = None  # longest request, seconds; None: from the plan
    # Generic node-label hooks: labels every engine pod needs, and how spot nodes are labelled
    # and tainted where the provider has no convention llmhost knows (KEY=VALUE, KEY=VALUE:EFFECT).
    node_labels: tuple[tuple[str, str], ...] = ()
    spot_labels: tuple[tuple[str, str], ...] = ()
    spot_tolerations: tuple[tuple[str, str, str], ...] = ()
    monitoring: bool = True  # ServiceMonitor, PodMonitor, PrometheusRule, dashboard
    gpu_monitoring: bool = True  # scrape the GPU Operator's DCGM exporter, GPU alerts
    dcgm_monitor: DcgmMonitor = "service"  # ServiceMonitor (the GPU Operator's) or PodMonitor
    dcgm_namespace: str = "gpu-operator"  # where the GPU Operator runs the DCGM exporter
    network_policies: bool = True
    gateway_api: bool = False  # InferencePool + HTTPRoute (Gateway API Inference Extension)
    gateway_name: str = "inference-gateway"  # the Gateway the HTTPRoute attaches to
    console: bool = False  # serve the web console at /ui (off in cluster renders unless asked)
    tls: bool = True  # with ingress_host: a cert-manager Certificate and TLS on the Ingress
    # Gateway tiers from a fleet plan: (tier name, models in order) for the gateway's config.
    tiers: tuple[tuple[str, tuple[str, ...]], ...] = ()
