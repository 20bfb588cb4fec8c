"""Start stand-in backends and an in-process gateway in front of them, for one test."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from llmhost.config import Config, ModelConfig, ServerConfig
from llmhost.engines.supervisor import free_port
from llmhost.gateway.server import Parts, Prepared, run_gateway
from llmhost.gateway.server import in_process as composed
from tests.support.standin import StandIn


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, host: str = "127.0.0.1", port: int | None = None
) -> AsyncIterator[str]:
    """Serve `app` on the running loop (on a free port unless given); its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def standin(
    reset_all: bool = False, fail_status: int | None = None
) -> AsyncIterator[tuple[StandIn, str]]:
    """A stand-in backend on a free port: (its handler object, its base URL)."""
    backend = StandIn(reset_all=reset_all, fail_status=fail_status)
    async with serving(backend.app()) as url:
        yield backend, url


@contextlib.contextmanager
def served_in_thread(app: web.Application) -> Iterator[str]:
    """Serve `app` on its own event loop in a thread, for tests that block (subprocesses,
    synchronous clients); its base URL."""
    loop = asyncio.new_event_loop()
    served = serving(app)
    url = loop.run_until_complete(served.__aenter__())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(served.__aexit__(None, None, None))
        loop.close()


@contextlib.asynccontextmanager
async def gateway(
    models: list[ModelConfig],
    wait_ready: bool = True,
    tiers: dict[str, tuple[str, ...]] | None = None,
    **server: Any,
) -> AsyncIterator[str]:
    """The gateway serving `models` (external URLs only) on a free port; its base URL."""
    store = Path(tempfile.mkdtemp(prefix="llmhost-store-")) / "llmhost.db"
    settings = {
        "port": free_port(),
        "health_interval_s": 0.2,
        "auth": "open",
        "store_url": f"sqlite:///{store}",
        **server,
    }
    config = Config(server=ServerConfig(**settings), models=tuple(models), tiers=tiers or {})
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_gateway(config, [Prepared(m) for m in models], stop, lambda url: started.set())
    )
    await asyncio.wait(
        [task, asyncio.ensure_future(started.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if task.done():
        task.result()
    url = f"http://127.0.0.1:{settings['port']}"
    try:
        if wait_ready:
            await until_ready(url)
        yield url
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def in_process(
    models: list[ModelConfig], **server: Any
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Parts]]:
    """The gateway composed as `llmhost up` composes it, served by aiohttp's test server in
    this process, with its parts (pipeline, tenancy, routes) to inspect or replace."""
    store = Path(tempfile.mkdtemp(prefix="llmhost-store-")) / "llmhost.db"
    settings = {"auth": "open", "store_url": f"sqlite:///{store}", **server}
    config = Config(server=ServerConfig(**settings), models=tuple(models))
    async with (
        composed(config, [Prepared(m) for m in models]) as parts,
        TestClient(TestServer(parts.gateway.app())) as client,
    ):
        yield client, parts


async def settled(parts: Parts) -> None:
    """Wait for every request's settlement, then commit the audit log (no sleeping)."""
    while parts.tenancy.tasks:
        await asyncio.gather(*parts.tenancy.tasks, return_exceptions=True)
    await asyncio.to_thread(parts.tenancy.audit.flush)


async def until_ready(url: str, timeout_s: float = 10.0) -> None:
    """Wait for the gateway's /ready to answer 200."""
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            async with session.get(url + "/ready") as resp:
                if resp.status == 200:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{url} not ready after {timeout_s} s")
            await asyncio.sleep(0.05)


def model(name: str, *urls: str, **extra: Any) -> ModelConfig:
    """An external model served from `urls`."""
    return ModelConfig(name=name, engine="openai", urls=urls, **extra)
