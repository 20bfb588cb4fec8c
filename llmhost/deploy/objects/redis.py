"""Redis for the gateways' shared rate-limit counters, when no external Redis is given.

Counters are short-lived (a minute's rate, a month's budget reseeded from the store), so one
replica without persistence is enough; losing it resets rates, never usage records.
"""

from __future__ import annotations

from typing import Any

from llmhost.deploy.objects.meta import REDIS, obj, restricted_security, selector

COMPONENT = "redis"
PORT = 6379


def redis_url(namespace: str) -> str:
    """The in-cluster Redis' URL."""
    return f"redis://{REDIS}.{namespace}.svc:{PORT}/0"


def objects(namespace: str, image: str) -> list[dict[str, Any]]:
    """Redis' Deployment and Service."""
    dep = obj("apps/v1", "Deployment", REDIS, namespace, COMPONENT, REDIS)
    probe = {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "failureThreshold": 3}
    dep["spec"] = {
        "replicas": 1,
        "selector": {"matchLabels": selector(COMPONENT, REDIS)},
        "template": {
            "metadata": {"labels": dict(dep["metadata"]["labels"])},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 999},
                "containers": [
                    {
                        "name": "redis",
                        "image": image,
                        "args": ["--save", "", "--appendonly", "no", "--maxmemory", "200mb"],
                        "ports": [{"name": "redis", "containerPort": PORT, "protocol": "TCP"}],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "readinessProbe": probe,
                        "livenessProbe": probe,
                        "securityContext": {
                            **restricted_security(),
                            "readOnlyRootFilesystem": True,
                        },
                    }
                ],
            },
        },
    }
    svc = obj("v1", "Service", REDIS, namespace, COMPONENT, REDIS)
    svc["spec"] = {
        "selector": selector(COMPONENT, REDIS),
        "ports": [{"name": "redis", "port": PORT, "targetPort": "redis", "protocol": "TCP"}],
    }
    return [dep, svc]
