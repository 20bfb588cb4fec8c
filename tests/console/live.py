"""A gateway with its console and stand-in backends, on an event loop in a thread, so that
blocking browser tests can drive it and stop one backend (a replica killed) while it serves."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.gateway.test_tenancy import keyed
from tests.support.harness import gateway, model, standin

ADMIN_KEY = "console-test-admin-key-0123456789"
MODEL = "llama-3.1-8b"  # a catalog id, so the usage page prices it at hosted APIs


class Live:
    """The running gateway: its URL, and `kill(i)` to stop the i-th stand-in backend."""

    def __init__(self, tmp_path: Path, replicas: int, **server: Any) -> None:
        self.tmp_path = tmp_path
        self.replicas = replicas
        self.server = server
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self._backends: list[contextlib.AsyncExitStack] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        urls = []
        for _ in range(self.replicas):
            stack = contextlib.AsyncExitStack()
            _, url = await stack.enter_async_context(standin())
            self._backends.append(stack)
            urls.append(url)
        settings = {**keyed(self.tmp_path), "console": True, **self.server}
        try:
            async with gateway([model(MODEL, *urls)], **settings) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()
        finally:
            for stack in self._backends:
                await stack.aclose()

    def start(self) -> None:
        """Serve, and wait until every replica is ready."""
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise AssertionError(f"the gateway did not start: {self._error!r}")

    def kill(self, index: int) -> None:
        """Stop stand-in backend `index` (its replica's health checks start failing)."""
        done = asyncio.run_coroutine_threadsafe(self._backends[index].aclose(), self.loop)
        done.result(10)

    def close(self) -> None:
        """Stop the gateway and every backend."""
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


@contextlib.contextmanager
def live(tmp_path: Path, replicas: int = 2, **server: Any) -> Iterator[Live]:
    """A `Live` gateway for the duration of the block."""
    running = Live(tmp_path, replicas, **server)
    running.start()
    try:
        yield running
    finally:
        running.close()
