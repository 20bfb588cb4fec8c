"""One way to reach the Kubernetes API from the gateway: the client and its errors.

In a pod the in-cluster service account is used (and its namespace is the default); `server` and
`token` name another API server instead, as tests and out-of-cluster runs do.
"""

from __future__ import annotations

from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError

from llmhost.errors import LlmhostError


class KubernetesError(LlmhostError):
    """The Kubernetes API refused or failed a call."""


class KubernetesUnreachable(KubernetesError):
    """No answer from the API server at all (refused, unknown host, timed out, bad TLS)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


def api_client(namespace: str | None, server: str | None = None, token: str = "") -> AsyncClient:
    """A lightkube client for `namespace`: in-cluster by default, else `server` with `token`."""
    config = None
    if server:
        config = KubeConfig.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "llmhost",
                "clusters": [{"name": "api", "cluster": {"server": server}}],
                "users": [{"name": "llmhost", "user": {"token": token} if token else {}}],
                "contexts": [
                    {
                        "name": "llmhost",
                        "context": {
                            "cluster": "api",
                            "user": "llmhost",
                            "namespace": namespace or "default",
                        },
                    }
                ],
            }
        )
    return AsyncClient(config=config, namespace=namespace, field_manager="llmhost")


async def api_call(call: Any, where: str) -> Any:
    """Await one API call; refusals and transport failures become a `KubernetesError`."""
    try:
        return await call
    except ApiError as exc:
        status = exc.status
        raise KubernetesError(f"{where}: {status.code} {status.reason}: {status.message}") from None
    except httpx2.TransportError as exc:
        raise KubernetesUnreachable(where, str(exc) or type(exc).__name__) from None
    except Exception as exc:  # transport errors, or a non-JSON error body
        raise KubernetesError(f"{where}: {exc}") from None
