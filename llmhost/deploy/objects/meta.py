"""Names and labels every rendered object shares."""

from __future__ import annotations

from typing import Any

PART_OF = "llmhost"
GATEWAY = "llmhost-gateway"
REDIS = "llmhost-redis"
CONFIG = "llmhost-config"
GATEWAY_PORT = 8000


def labels(component: str, instance: str) -> dict[str, str]:
    """The recommended app.kubernetes.io labels; `instance` tells objects of a kind apart."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "llmhost",
    }


def selector(component: str, instance: str) -> dict[str, str]:
    """The stable subset of `labels` used in selectors (selectors cannot change later)."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": instance}


def obj(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    component: str,
    instance: str,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An object's apiVersion, kind and metadata."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = labels(component, instance)
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def http_probe(path: str, period_s: int, failures: int, timeout_s: int = 5) -> dict[str, Any]:
    """An HTTP GET probe on the container's `http` port."""
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": timeout_s,
        "failureThreshold": failures,
    }


def restricted_security() -> dict[str, Any]:
    """A container security context that meets the 'restricted' Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
