"""`llmhost doctor`: what this machine has for serving, each check with how to fix it.

Python, the C++ toolchain and cmake (to build llama-server once), the cached engine, the listen
port, the configured Redis and PostgreSQL, and a kubeconfig. It changes nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from llmhost.config import Config


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, whether it is fine, what was seen, how to fix it."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def checks(config: Config, kubeconfig: Path | None = None) -> list[Check]:
    """Every check, in order (`kubeconfig`: the file to look for instead of kubectl's)."""
    from llmhost.engines.build import server_path

    found = [
        Check(
            "python",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "install Python 3.11 or newer",
        ),
    ]
    for tool, package in (("cmake", "cmake"), ("c++", "g++")):
        path = shutil.which(tool)
        found.append(
            Check(
                tool,
                path is not None,
                path or "not found",
                f"apt-get install {package} (builds llama-server once)",
            )
        )
    engine = server_path()
    found.append(
        Check(
            "llama-server", engine.is_file(), str(engine), "make engine (about 5 minutes, cached)"
        )
    )
    server = config.server
    found.append(
        Check(
            f"port {server.port}",
            _port_free(server.host, server.port),
            f"{server.host}:{server.port} free"
            if _port_free(server.host, server.port)
            else f"{server.host}:{server.port} in use",
            "stop what holds it, or serve with --port",
        )
    )
    for label, url, default in (
        ("redis", server.redis_url, 6379),
        ("postgresql", server.store_url, 5432),
    ):
        if not url or url.startswith("sqlite"):
            found.append(Check(label, True, "not configured (in-process / SQLite)"))
            continue
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or default
        found.append(
            Check(
                label,
                _reachable(host, port),
                f"{host}:{port}",
                f"start {label}, or fix server.{'redis_url' if label == 'redis' else 'store_url'}",
            )
        )
    if kubeconfig is None:
        kubeconfig = Path(os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config")))
    found.append(
        Check(
            "kubeconfig",
            kubeconfig.is_file(),
            str(kubeconfig),
            "only for render/apply: kubectl config, or set KUBECONFIG",
        )
    )
    return found
