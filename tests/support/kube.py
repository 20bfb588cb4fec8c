"""Pointing the CLI at a stand-in Kubernetes API: a kubeconfig for its URL (run `llmhost` with
it through `tests.support.processes.run_llmhost`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml


def kubeconfig_for(
    url: str,
    folder: Path,
    others: Mapping[str, str] | None = None,
    current: str = "stand-in",
) -> Path:
    """A kubeconfig under `folder` whose context `stand-in` is the API server at `url`; `others`
    adds contexts by name -> server URL, and `current` names the current context."""
    servers = {"stand-in": url, **(others or {})}
    path = folder / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": current,
                "clusters": [{"name": n, "cluster": {"server": s}} for n, s in servers.items()],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": n, "context": {"cluster": n, "user": "me"}} for n in servers],
            }
        )
    )
    return path
