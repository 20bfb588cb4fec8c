"""Gateway API Inference Extension: an `InferencePool` over each model's engine pods and an
`HTTPRoute` from the cluster's Gateway to the llmhost gateway, for clusters that standardised on
Gateway API (Istio, NGINX Gateway Fabric, agentgateway). Requests still pass the llmhost
gateway, which authenticates, meters and routes them; the pools describe the engines in the
shape those implementations (and their endpoint pickers) read.

Schemas: inference.networking.k8s.io/v1 InferencePool (kubernetes-sigs/
gateway-api-inference-extension) and gateway.networking.k8s.io/v1 HTTPRoute (kubernetes-sigs/
gateway-api, standard channel).
"""

from __future__ import annotations

from typing import Any

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.engine import ROLE
from llmhost.deploy.objects.meta import GATEWAY, obj, selector
from llmhost.deploy.options import RenderOptions

INFERENCE = "inference.networking.k8s.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"


def inference_pool(engine: EngineDeployment, namespace: str) -> dict[str, Any]:
    """The model's serving pods (a multi-node group's leaders) on the engine port."""
    pool = obj(
        INFERENCE,
        "InferencePool",
        engine.deployment,
        namespace,
        "engine",
        engine.name,
        annotations={"llmhost.dev/model": engine.model},
    )
    pods = selector("engine", engine.name)
    if engine.multi_node:
        pods[ROLE] = "leader"
    pool["spec"] = {
        "selector": {"matchLabels": pods},
        "targetPorts": [{"number": engine.launch.port}],
    }
    return pool


def http_route(options: RenderOptions) -> dict[str, Any]:
    """Everything the Gateway receives (for the ingress host, when one is given) goes to the
    llmhost gateway's Service."""
    route = obj(GATEWAY_API, "HTTPRoute", GATEWAY, options.namespace, "gateway", GATEWAY)
    spec: dict[str, Any] = {
        "parentRefs": [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": options.gateway_name}
        ],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"kind": "Service", "name": GATEWAY, "port": 80}],
            }
        ],
    }
    if options.ingress_host:
        spec["hostnames"] = [options.ingress_host]
    route["spec"] = spec
    return route


def objects(engines: list[EngineDeployment], options: RenderOptions) -> list[dict[str, Any]]:
    """An InferencePool per model and the HTTPRoute."""
    return [*(inference_pool(e, options.namespace) for e in engines), http_route(options)]
