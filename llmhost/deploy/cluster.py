"""Which cluster the CLI talks to: a kubeconfig (`--kubeconfig`, else $KUBECONFIG, else
~/.kube/config, else the pod's service account) and one of its contexts (`--context`, else the
current one), and a client for it whose failures name the server and the context.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG, SingleConfig
from lightkube.core.exceptions import ConfigError

from llmhost.errors import UnknownChoiceError, UsageError
from llmhost.gateway.kube_api import KubernetesUnreachable

FIELD_MANAGER = "llmhost-apply"
T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    """One kubeconfig context: where its API server is and how to reach it."""

    config: SingleConfig
    source: str  # the kubeconfig file, or "in-cluster"

    @property
    def server(self) -> str:
        """The API server's URL."""
        return str(self.config.cluster.server)

    @property
    def context(self) -> str:
        """The context's name."""
        return self.config.context_name

    def describe(self) -> str:
        """The server and the context, for messages."""
        return f"{self.server} (context {self.context} in {self.source})"


def _read(path: Path, option: str) -> KubeConfig:
    try:
        return KubeConfig.from_file(path)
    except ConfigError:
        raise UsageError(f"{option} {path}: no such kubeconfig file") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{option} {path}: not a kubeconfig ({exc})") from None


def find_cluster(kubeconfig: Path | None = None, context: str | None = None) -> Cluster:
    """The cluster to use: `kubeconfig` and `context` when given, else as kubectl finds it."""
    if kubeconfig is not None:
        config, source = _read(kubeconfig.expanduser(), "--kubeconfig"), str(kubeconfig)
    elif os.environ.get("KUBECONFIG"):
        path = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        config, source = _read(path, "KUBECONFIG"), str(path)
    elif Path(DEFAULT_KUBECONFIG).expanduser().is_file() or context is not None:
        config, source = (
            _read(Path(DEFAULT_KUBECONFIG).expanduser(), "kubeconfig"),
            "~/.kube/config",
        )
    else:
        try:
            config, source = KubeConfig.from_service_account(), "in-cluster"
        except ConfigError:
            raise UsageError(
                "no Kubernetes configuration: no ~/.kube/config, no $KUBECONFIG and not in a "
                "pod (pass --kubeconfig FILE)"
            ) from None
    if context is not None and context not in config.contexts:
        raise UnknownChoiceError(f"context in {source}", context, config.contexts)
    try:
        single = config.get(context)
    except (ConfigError, KeyError) as exc:
        raise UsageError(f"{source}: {exc} (pass --context NAME)") from None
    assert single is not None
    return Cluster(single, source)


async def with_client(cluster: Cluster, work: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """Run `work` with a client for `cluster`, closed after; when the server does not answer,
    one error naming it and the context."""
    try:
        client = AsyncClient(config=cluster.config, field_manager=FIELD_MANAGER)
    except (ConfigError, AssertionError, OSError) as exc:  # lightkube asserts on a missing user
        reason = str(exc) or type(exc).__name__
        raise UsageError(f"{cluster.source}: context {cluster.context}: {reason}") from None
    try:
        return await work(client)
    except KubernetesUnreachable as exc:
        raise _unreachable(cluster, exc.reason) from None
    except httpx2.TransportError as exc:
        raise _unreachable(cluster, str(exc) or type(exc).__name__) from None
    finally:
        await client.close()


def _unreachable(cluster: Cluster, reason: str) -> UsageError:
    return UsageError(f"cannot reach the Kubernetes API at {cluster.describe()}: {reason}")
