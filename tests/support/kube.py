"""Pointing the CLI at a stand-in Kubernetes API: a kubeconfig for its URL, and a way to run
`llmhost` with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def kubeconfig_for(url: str, folder: Path) -> Path:
    """A kubeconfig under `folder` whose only context is the API server at `url`."""
    path = folder / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "stand-in",
                "clusters": [{"name": "stand-in", "cluster": {"server": url}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "stand-in", "context": {"cluster": "stand-in", "user": "me"}}
                ],
            }
        )
    )
    return path


def run_llmhost(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`llmhost ARGS` in a subprocess with `env` (one line on stderr for mistakes)."""
    return subprocess.run(
        [sys.executable, "-m", "llmhost", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
