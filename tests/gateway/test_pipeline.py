"""The request pipeline in-process (aiohttp's test server, the composed gateway): an exception
injected at every step leaves a 500 in the OpenAI shape, one audit record, no slot held, and one
log entry with the traceback and without the request's content."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from llmhost.gateway.keys import create_key
from llmhost.gateway.pipeline import Pipeline
from tests.support.harness import in_process, model, settled, standin

SECRET = "secret-prompt-text-31c9"
BODY = {"model": "m", "messages": [{"role": "user", "content": SECRET}], "max_tokens": 8}
STEPS = ["authenticate", "read", "parse", "resolve", "validate", "admit", "prepare", "forward"]


def boom(step: str) -> Any:
    """A replacement for `step` that fails the way a bug would, quoting the request."""
    if step == "admit":

        @contextlib.asynccontextmanager
        async def admit(*args: Any) -> AsyncIterator[None]:
            raise RuntimeError(f"bug in admit: {SECRET}")
            yield

        return admit
    if step in ("authenticate", "read", "forward"):

        async def failing_async(*args: Any) -> Any:
            raise RuntimeError(f"bug in {step}: {SECRET}")

        return failing_async

    def failing(*args: Any) -> Any:
        raise RuntimeError(f"bug in {step}: {SECRET}")

    return failing


@pytest.mark.parametrize("step", STEPS)
def test_an_exception_at_any_step_is_a_clean_500_that_releases_everything(
    step: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        store_url = f"sqlite:///{tmp_path / 'llmhost.db'}"
        async with (
            standin() as (backend, burl),
            in_process([model("m", burl)], auth="keys", store_url=store_url) as (client, parts),
        ):
            key, record = create_key(parts.tenancy.store, "acme", max_concurrent=1, tpm=10**6)
            headers = {"Authorization": f"Bearer {key}"}
            pipeline = parts.gateway.pipeline
            setattr(pipeline, step, boom(step))
            with caplog.at_level(logging.ERROR, logger="llmhost.gateway"):
                resp = await client.post("/v1/chat/completions", json=BODY, headers=headers)
                answer = await resp.json()
            assert resp.status == 500 and resp.content_type == "application/json"
            assert answer["error"]["code"] == "internal_error"
            assert answer["error"]["type"] == "server_error"
            await settled(parts)
            assert await parts.tenancy.counters.inflight(record.prefix) == 0
            rows = parts.tenancy.store.audit()
            assert [r.status for r in rows] == [500]
            logged = [r for r in caplog.records if "unexpected RuntimeError" in r.getMessage()]
            assert len(logged) == 1 and f"self.{step}(" in logged[0].getMessage()
            assert SECRET not in caplog.text
            # The gateway is unharmed: the same key is served once the step is whole again.
            delattr(pipeline, step)
            resp = await client.post("/v1/chat/completions", json=BODY, headers=headers)
            assert resp.status == 200
            assert len(backend.requests) == 1

    uvloop.run(scenario())


def test_an_exception_after_the_stream_started_ends_it_with_an_error_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmhost.gateway import proxy

    real = proxy._relay_stream

    async def breaks_midway(
        request: Any, resp: Any, events: Any, first: Any, ex: Any, deadline: float
    ) -> Any:
        async def failing() -> AsyncIterator[bytes]:
            async for chunk in events:
                yield chunk
                raise RuntimeError("bug mid-stream")

        return await real(request, resp, failing(), first, ex, deadline)

    monkeypatch.setattr(proxy, "_relay_stream", breaks_midway)

    async def scenario() -> None:
        async with (
            standin() as (_, burl),
            in_process([model("m", burl)]) as (client, parts),
        ):
            stream = {**BODY, "stream": True, "x_standin": {"chunks": 5}}
            resp = await client.post("/v1/chat/completions", json=stream)
            text = await resp.text()
            assert resp.status == 200 and "w0" in text
            assert '"code":"internal_error"' in text.replace(" ", "")
            await settled(parts)
            assert [r.status for r in parts.tenancy.store.audit()] == [500]

    uvloop.run(scenario())


def test_steps_are_the_pipeline_s_public_methods() -> None:
    for step in STEPS:
        assert callable(getattr(Pipeline, step)), step
    assert asyncio.iscoroutinefunction(Pipeline.forward)


def test_the_composition_root_takes_the_seams_it_is_given(tmp_path: Path) -> None:
    from llmhost.config import Config, ServerConfig
    from llmhost.gateway.server import Prepared, Seams
    from llmhost.gateway.server import in_process as composed
    from llmhost.gateway.upstream import UpstreamPool

    class Recorder:
        count = 1

        async def scale(self, count: int, wait: bool = True) -> None:
            self.count = count

    pool, scaler, ticks = UpstreamPool(), Recorder(), iter(range(10**6))
    seams = Seams(pool=pool, clock=lambda: float(next(ticks)), scalers={"m": scaler})
    config = Config(
        server=ServerConfig(auth="open", store_url=f"sqlite:///{tmp_path / 's.db'}"),
        models=(model("m", "http://127.0.0.1:9"),),
    )

    async def scenario() -> None:
        async with composed(config, [Prepared(m) for m in config.models], seams) as parts:
            assert parts.gateway.pipeline.pool is pool
            assert parts.gateway.pipeline.clock() == 0.0
            assert [a.scaler for a in parts.autoscalers] == [scaler]

    uvloop.run(scenario())


@pytest.mark.parametrize("on", [True, False])
def test_one_access_line_per_request_and_never_its_text(
    on: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        store_url = f"sqlite:///{tmp_path / 'llmhost.db'}"
        async with (
            standin() as (_, burl),
            in_process([model("m", burl)], store_url=store_url, access_log=on) as (client, parts),
        ):
            assert (await client.post("/v1/chat/completions", json=BODY)).status == 200
            assert (await client.post("/v1/chat/completions", json={"model": 5})).status == 400
            await settled(parts)

    uvloop.run(scenario())
    lines = [line for line in capsys.readouterr().err.splitlines() if '"POST /v1/' in line]
    if not on:
        assert lines == []
        return
    assert len(lines) == 2
    assert '"POST /v1/chat/completions" 200 m 12+6 tok' in lines[0]
    assert '"POST /v1/chat/completions" 400 - 0+0 tok' in lines[1]
    assert all(SECRET not in line for line in lines)
