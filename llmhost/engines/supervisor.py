"""The local supervisor: runs a model's engine replicas (llama-server, vLLM) as child processes.

Each replica gets a free loopback port, is published to the model's `ReplicaSet` as soon as it
starts, and is marked ready when its readiness URL answers. A replica that exits is restarted with
exponential backoff. On stop every child gets SIGTERM, then SIGKILL after 10 s; and each child is
also tied to the gateway with PR_SET_PDEATHSIG, so even `kill -9` of the gateway leaves no engine
behind. Each replica leads its own process group, which is killed once the replica has exited, so
an engine's helper processes go with it. Each replica logs to its own file, named by replica and
gateway process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from llmhost.engines.base import LaunchSpec
from llmhost.engines.replicas import Replica, ReplicaSet, ReplicaState
from llmhost.errors import LlmhostError

log = logging.getLogger("llmhost.supervisor")
_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: be killed when the gateway dies, however it dies (Linux).

    SIGKILL rather than SIGTERM: llama-server can hang in its own clean-up when SIGTERM arrives
    just after it starts (seen here: "cleaning up before exit..." and then a futex wait forever),
    and with the gateway gone nobody would be left to escalate.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of an exited replica's process group (each replica leads its own):
    an engine's helper processes (vLLM's engine core and workers) outlive a killed parent."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class _Child:
    replica: Replica
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    restarts: int = 0


class EngineStartError(LlmhostError):
    """No replica of a model became ready; the message points at the engine's log."""


class LocalSupervisor:
    """Keeps `count` local replicas of one model running and publishes them to `replica_set`."""

    def __init__(
        self,
        replica_set: ReplicaSet,
        binary: Path,
        spec: LaunchSpec,
        log_dir: Path,
        ready_timeout_s: float = 120.0,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        drain_s: float = 30.0,
    ) -> None:
        self.replica_set = replica_set
        self.binary = binary
        self.spec = spec
        self.log_dir = log_dir
        self.ready_timeout_s = ready_timeout_s
        self.backoff_s = backoff_s
        self.drain_s = drain_s
        self._children: list[_Child] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._serial = 0

    @property
    def count(self) -> int:
        """Replicas this supervisor keeps running."""
        return len(self._children)

    async def scale(self, count: int, wait: bool = True) -> None:
        """Run exactly `count` replicas; with `wait`, return once the new ones are ready."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        while len(self._children) > count:
            await self._drain_and_stop(self._children.pop())
        new = [self._start_child() for _ in range(count - len(self._children))]
        if wait and new:
            await self._wait_any_ready(new)

    async def stop(self) -> None:
        """Stop every replica (SIGTERM, then SIGKILL after 10 s) and wait for them to exit."""
        self._stopping = True
        children, self._children = self._children, []
        await asyncio.gather(*(self._stop_child(c) for c in children))
        if self._session is not None:
            await self._session.close()
            self._session = None

    def pids(self) -> list[int]:
        """Process ids of the running replicas."""
        return [c.proc.pid for c in self._children if c.proc and c.proc.returncode is None]

    def _start_child(self) -> _Child:
        self._serial += 1
        replica = Replica(id=f"{self.replica_set.model}-{self._serial}", url="", managed=True)
        child = _Child(replica)
        child.task = asyncio.create_task(self._keep_running(child), name=replica.id)
        self._children.append(child)
        return child

    async def _wait_any_ready(self, children: list[_Child]) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if any(c.replica.state is ReplicaState.READY for c in children):
                return
            await asyncio.sleep(0.05)
        logs = ", ".join(str(self._log_path(c.replica)) for c in children)
        raise EngineStartError(
            f"no replica of '{self.replica_set.model}' was ready after "
            f"{self.ready_timeout_s:.0f} s; see {logs}"
        )

    def _log_path(self, replica: Replica) -> Path:
        return self.log_dir / f"{replica.id}.{os.getpid()}.log"

    async def _keep_running(self, child: _Child) -> None:
        backoff = self.backoff_s[0]
        replica = child.replica
        self.replica_set.add(replica)
        try:
            while not self._stopping:
                port = free_port(self.spec.host)
                replica.url = f"http://{self.spec.host}:{port}"
                spec = replace(self.spec, port=port)
                adapter = self.replica_set.adapter
                args = adapter.launch_args(spec)
                env = {**os.environ, **adapter.launch_env(spec)}
                started = time.monotonic()
                with self._log_path(replica).open("ab") as out:
                    child.proc = await asyncio.create_subprocess_exec(
                        str(self.binary),
                        *args,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                        env=env,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
                self.replica_set.set_state(replica, ReplicaState.STARTING)
                await self._wait_ready(child)
                code = await child.proc.wait()
                _kill_group(child.proc.pid)
                self.replica_set.set_state(replica, ReplicaState.DOWN)
                if self._stopping or child not in self._children:
                    return
                if time.monotonic() - started > 60:
                    backoff = self.backoff_s[0]  # it ran a good while: not a crash loop
                child.restarts += 1
                log.warning(
                    "replica %s exited with code %s; restart %d in %.1f s (log: %s)",
                    replica.id,
                    code,
                    child.restarts,
                    backoff,
                    self._log_path(replica),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_s[1])
        finally:
            self.replica_set.remove(replica)

    async def _wait_ready(self, child: _Child) -> None:
        """Poll the readiness URL until it answers 200 or the process exits."""
        assert child.proc is not None and self._session is not None
        url = child.replica.url + self.replica_set.adapter.ready_path
        while child.proc.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with self._session.get(url) as resp:
                    if resp.status == 200:
                        self.replica_set.set_state(child.replica, ReplicaState.READY)
                        return
            await asyncio.sleep(0.1)

    async def _drain_and_stop(self, child: _Child) -> None:
        """Scale-down: take no new requests, let in-flight ones finish (up to drain_s), stop."""
        replica = child.replica
        self.replica_set.set_state(replica, ReplicaState.DRAINING)
        deadline = time.monotonic() + self.drain_s
        while replica.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self._stop_child(child)

    async def _stop_child(self, child: _Child) -> None:
        if child in self._children:
            self._children.remove(child)
        proc = child.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if proc is not None:
            _kill_group(proc.pid)
        if child.task is not None:
            child.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await child.task
