"""A real `llmhost up` process serving the real embedded model, shared by a test module."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from llmhost.engines.build import build_llama_server
from llmhost.engines.supervisor import free_port
from llmhost.engines.weights import embedded_gguf
from tests.support.processes import engine_pids, wait_gone


@dataclass
class Served:
    """A running gateway: its URL, process and log."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_gateway(config: dict[str, object], workdir: Path, timeout_s: float = 180) -> Served:
    """Start `llmhost up` with `config` and wait until /ready answers 200."""
    build_llama_server()
    embedded_gguf()
    path = workdir / "llmhost.yaml"
    port = free_port()
    server = {"auth": "open", "store_url": f"sqlite:///{workdir / 'llmhost.db'}"}
    config = {**config, "server": {**server, **dict(config.get("server") or {})}}  # type: ignore[dict-item]
    path.write_text(yaml.safe_dump(config))
    log = workdir / "gateway.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmhost", "up", "--config", str(path), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llmhost up exited {proc.returncode}:\n{served.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(served.url + "/ready", timeout=2) as resp:
                if resp.status == 200:
                    return served
        except OSError:
            pass
        time.sleep(0.2)
    stop_gateway(served)
    pytest.fail(f"llmhost up not ready after {timeout_s} s:\n{served.log_text()[-3000:]}")


def stop_gateway(served: Served, sig: int = signal.SIGTERM) -> list[int]:
    """Stop the gateway with `sig`; return engine processes left behind (should be none)."""
    engines = engine_pids(served.proc.pid)
    served.proc.send_signal(sig)
    try:
        served.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()
    return wait_gone(engines)


GEMMA = {
    "name": "gemma-3-270m",
    "aliases": ["default"],
    "weights": "embedded",
    "chat_template": "gemma",
    "context": 2048,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two replicas of the embedded chat model, and one embedding replica of the same weights."""
    config = {
        "server": {"health_interval_s": 0.5},
        "models": [
            {**GEMMA, "replicas": 2, "parallel": 4, "threads": 1},
            {
                "name": "gemma-embed",
                "weights": "embedded",
                "replicas": 1,
                "parallel": 1,
                "context": 512,
                "threads": 1,
                "args": ["--embeddings", "--pooling", "mean"],
            },
        ],
    }
    served = start_gateway(config, tmp_path_factory.mktemp("gateway"))
    yield served
    left = stop_gateway(served)
    assert left == [], f"engine processes left after SIGTERM: {left}"
