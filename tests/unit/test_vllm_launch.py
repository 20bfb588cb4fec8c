"""The vLLM launcher's no-orphans logic, on real processes, with a stand-in for vLLM's server.

Stand-in (named as such): a module at `vllm.entrypoints.openai.api_server` on PYTHONPATH that
starts a helper process, as vLLM's API server starts its engine core, and sleeps. The real server
is exercised in tests/vllm; this checks the process-group handling in seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmhost.engines import vllm_launch
from tests.support.processes import alive, children, wait_gone

FAKE_SERVER = """
import subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("helper", helper.pid, flush=True)
time.sleep(300)
"""
# A stand-in gateway: starts the launcher as the supervisor does (own session, parent-death
# signal SIGKILL), prints its pid, and waits.
GATEWAY = """
import ctypes, signal, subprocess, sys, time
def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
proc = subprocess.Popen([sys.executable, sys.argv[1], "serve", "/m", "--port", "1"],
                        start_new_session=True, preexec_fn=die_with_parent)
print(proc.pid, flush=True)
time.sleep(300)
"""


@pytest.fixture
def fake_vllm(tmp_path: Path) -> dict[str, str]:
    module = tmp_path / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True)
    for folder in (module, module.parent, module.parent.parent):
        (folder / "__init__.py").write_text("")
    (module / "api_server.py").write_text(FAKE_SERVER)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def _group(pgid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _start_gateway(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    gateway = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, vllm_launch.__file__], env=env, stdout=subprocess.PIPE
    )
    assert gateway.stdout is not None
    launcher = int(gateway.stdout.readline())
    _wait_for(lambda: len(_group(launcher)) >= 3)  # launcher, server, helper
    return gateway, launcher


def test_a_killed_server_takes_its_helpers_with_it(fake_vllm: dict[str, str]) -> None:
    gateway, launcher = _start_gateway(fake_vllm)
    try:
        group = _group(launcher)
        (server,) = children(launcher)
        os.kill(server, signal.SIGKILL)  # as a crash of vLLM's API server would
        assert wait_gone(group) == []  # the launcher killed the helper, then exited
    finally:
        gateway.kill()
        gateway.wait()


def test_a_dead_gateway_leaves_no_vllm_process(fake_vllm: dict[str, str]) -> None:
    gateway, launcher = _start_gateway(fake_vllm)
    group = _group(launcher)
    gateway.kill()  # kill -9: the launcher's parent-death SIGTERM must clear the group
    gateway.wait()
    assert wait_gone(group) == []
    assert not alive(launcher)
