"""Graceful shutdown of `llmhost up`: on SIGTERM it stops taking connections, lets a stream in
flight finish (up to its grace period), then exits cleanly. The backend is the stand-in: what is
under test is the gateway process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from llmhost.engines.supervisor import free_port
from tests.support.harness import served_in_thread
from tests.support.processes import wait_http
from tests.support.standin import StandIn


@pytest.fixture
def backend() -> Iterator[str]:
    """The stand-in on its own loop in a thread, so the test can block on the gateway."""
    with served_in_thread(StandIn().app()) as url:
        yield url


def test_sigterm_drains_the_stream_in_flight_and_refuses_new_work(
    backend: str, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "llmhost.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"port": port, "auth": "open", "store_url": f"sqlite:///{tmp_path}/s.db"},
                "models": [{"name": "m", "engine": "openai", "urls": [backend]}],
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmhost", "up", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/ready", proc, timeout_s=60)

        async def scenario() -> tuple[str, bool]:
            body = {
                "model": "m",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
                "x_standin": {"chunks": 8, "chunk_delay_s": 0.25},
            }  # about 2 s of stream
            async with (
                aiohttp.ClientSession() as session,
                session.post(url + "/v1/chat/completions", json=body) as resp,
            ):
                first = await resp.content.readline()
                assert first.startswith(b"data: ")
                proc.send_signal(signal.SIGTERM)  # mid-stream
                await asyncio.sleep(0.5)
                refused = False
                try:
                    async with aiohttp.ClientSession() as other:
                        await other.get(url + "/health")
                except aiohttp.ClientConnectionError:
                    refused = True
                rest = (await resp.content.read()).decode()
            return first.decode() + rest, refused

        text, refused = asyncio.run(scenario())
        assert refused  # the listener closed at once
        assert all(f"w{i} " in text for i in range(8))  # every chunk arrived
        assert text.rstrip().endswith("data: [DONE]")  # and the stream ended cleanly
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
