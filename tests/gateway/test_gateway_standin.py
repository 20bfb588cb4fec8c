"""The gateway itself, in front of stand-in backends: the thing under test is the gateway,
so the backend answers instantly and misbehaves on request. Clients are the official `openai`
client and aiohttp; metrics are read with Prometheus' own text parser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import gateway, model, standin

Scenario = Callable[[], Awaitable[None]]


def run(scenario: Scenario) -> None:
    uvloop.run(scenario())  # the loop `llmhost up` runs on


def client(url: str, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, **kw)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, dict(r.headers), await r.read()


async def post(url: str, data: bytes, **headers: str) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as s, s.post(url, data=data, headers=headers) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def post_stream(url: str, body: bytes) -> tuple[int, dict[str, str], str]:
    """POST a chat request and read the whole (streamed) answer as text."""
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", data=body) as r:
        return r.status, dict(r.headers), (await r.read()).decode()


def test_chat_and_completion_count_usage_in_metrics() -> None:
    async def scenario() -> None:
        async with standin() as (_, backend), gateway([model("m", backend)]) as url:
            c = client(url)
            chat = await c.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            assert chat.choices[0].message.content == "Hello from the stand-in."
            assert chat.usage is not None and chat.usage.total_tokens == 18
            done = await c.completions.create(model="m", prompt="hi")
            assert done.usage is not None
            _, _, page = await get(url + "/metrics")
            values = samples(page.decode())
            ok = ("llmhost_requests_total", (("model", "m"), ("status", "200")))
            assert values[ok] == 2
            prompt = ("llmhost_tokens_total", (("kind", "prompt"), ("model", "m")))
            assert values[prompt] == 24
            assert values[("llmhost_inflight_requests", (("model", "m"),))] == 0
            assert values[("llmhost_backend_up", (("model", "m"), ("replica", "m-0")))] == 1

    run(scenario)


def test_stream_without_usage_hides_it_but_counts_it() -> None:
    async def scenario() -> None:
        async with standin() as (backend, burl), gateway([model("m", burl)]) as url:
            stream = await client(url).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            chunks = [c async for c in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert all(c.usage is None for c in chunks)  # the client did not ask for it
            assert backend.requests[-1]["stream_options"] == {"include_usage": True}
            _, _, page = await get(url + "/metrics")
            values = samples(page.decode())
            assert values[("llmhost_tokens_total", (("kind", "completion"), ("model", "m")))] == 6
            assert values[("llmhost_time_to_first_token_seconds_count", (("model", "m"),))] == 1

    run(scenario)


def test_stream_with_usage_passes_it_through_unbuffered() -> None:
    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)]) as url:
            body = (
                b'{"model":"m","stream":true,"stream_options":{"include_usage":true},'
                b'"messages":[{"role":"user"}]}'
            )
            _, headers, text = await post_stream(url, body)
            assert headers["X-Accel-Buffering"] == "no"
            assert headers["Content-Type"].startswith("text/event-stream")
            assert '"usage":{"prompt_tokens":12' in text
            assert text.rstrip().endswith("data: [DONE]")

    run(scenario)


def test_crlf_streams_pass_event_by_event_and_count_usage() -> None:
    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)]) as url:
            body = (
                b'{"model":"m","messages":[{"role":"user"}],"stream":true,'
                b'"x_standin":{"crlf":true,"chunks":4,"chunk_delay_s":0.3}}'
            )
            async with (
                aiohttp.ClientSession() as s,
                s.post(url + "/v1/chat/completions", data=body) as r,
            ):
                first = await asyncio.wait_for(r.content.readuntil(b"\r\n\r\n"), 0.25)
                assert b"w0" in first  # relayed before the rest exist: not buffered
                rest = (await r.read()).decode()
            assert '"usage"' not in rest and rest.rstrip().endswith("data: [DONE]")
            _, _, page = await get(url + "/metrics")
            tokens = ("llmhost_tokens_total", (("kind", "completion"), ("model", "m")))
            assert samples(page.decode())[tokens] == 6

    run(scenario)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_json", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "invalid_value", "model"),
        (b'{"model": "m"}', 400, "invalid_value", "messages"),
        (b'{"model": "m", "messages": []}', 400, "invalid_value", "messages"),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}',
            400,
            "invalid_value",
            "max_tokens",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": true}',
            400,
            "invalid_value",
            "max_tokens",
        ),
        (
            b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            400,
            "invalid_value",
            "stream",
        ),
        (
            b'{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}',
            404,
            "model_not_found",
            "model",
        ),
    ],
)
def test_bad_requests_get_openai_errors(
    body: bytes, status: int, code: str, param: str | None
) -> None:
    async def scenario() -> None:
        async with standin() as (backend, burl), gateway([model("m", burl)]) as url:
            got, _, answer = await post(url + "/v1/chat/completions", body)
            assert got == status
            assert answer["error"]["code"] == code
            assert answer["error"]["param"] == param
            assert answer["error"]["type"] == "invalid_request_error"
            assert answer["error"]["message"]
            assert backend.requests == []  # nothing bad reached the engine

    run(scenario)


def test_unknown_model_lists_served_ones_to_the_openai_client() -> None:
    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl, aliases=("fast",))]) as url:
            with pytest.raises(openai.NotFoundError) as caught:
                await client(url).chat.completions.create(
                    model="gpt-4", messages=[{"role": "user", "content": "x"}]
                )
            assert "served: fast, m" in str(caught.value)

    run(scenario)


def test_body_over_the_limit_is_413() -> None:
    async def scenario() -> None:
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], max_body_bytes=4096) as url,
        ):
            big = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 5000
            status, _, answer = await post(url + "/v1/chat/completions", big + b'"}]}')
            assert status == 413
            assert answer["error"]["code"] == "request_too_large"
            assert backend.requests == []

    run(scenario)


def test_no_ready_backend_is_503_with_retry_after() -> None:
    async def scenario() -> None:
        dead = "http://127.0.0.1:9"  # discard port: nothing listens
        async with gateway([model("m", dead)], wait_ready=False) as url:
            status, headers, answer = await post(
                url + "/v1/chat/completions",
                b'{"model":"m","messages":[{"role":"user"}]}',
            )
            assert status == 503
            assert headers["Retry-After"] == "2"
            assert answer["error"]["code"] == "no_backend"
            ready, _, _ = await get(url + "/ready")
            assert ready == 503

    run(scenario)


def test_first_byte_and_total_timeouts_are_504() -> None:
    async def scenario() -> None:
        async with (
            standin() as (_, burl),
            gateway([model("m", burl)], first_byte_timeout_s=0.3, total_timeout_s=0.6) as url,
        ):
            slow = (
                b'{"model":"m","messages":[{"role":"user"}],"stream":true,'
                b'"x_standin":{"delay_s":1}}'
            )
            status, _, answer = await post(url + "/v1/chat/completions", slow)
            assert (status, answer["error"]["code"]) == (504, "upstream_timeout")
            assert "first byte" in answer["error"]["message"]
            slow_whole = b'{"model":"m","messages":[{"role":"user"}],"x_standin":{"delay_s":1}}'
            status, _, answer = await post(url + "/v1/chat/completions", slow_whole)
            assert (status, answer["error"]["code"]) == (504, "upstream_timeout")
            # A stream that started in time but runs past the total limit ends with an error event.
            long = (
                b'{"model":"m","messages":[{"role":"user"}],"stream":true,'
                b'"x_standin":{"chunks":20,"chunk_delay_s":0.1}}'
            )
            _, _, text = await post_stream(url, long)
            assert '"code":"upstream_timeout"' in text
            assert "[DONE]" not in text

    run(scenario)


def test_failure_before_first_byte_is_retried_on_another_replica() -> None:
    async def scenario() -> None:
        async with (
            standin(reset_all=True) as (bad, bad_url),
            standin() as (good, good_url),
            gateway([model("m", bad_url, good_url)]) as url,
        ):
            c = client(url)
            for _ in range(4):
                chat = await c.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
                assert chat.choices[0].message.content
            assert bad.requests and len(good.requests) == 4

    run(scenario)


def test_upstream_error_status_retried_then_passed_on() -> None:
    async def scenario() -> None:
        async with (
            standin() as (first, url1),
            standin() as (second, url2),
            gateway([model("m", url1, url2)]) as url,
        ):
            body = b'{"model":"m","messages":[{"role":"user"}],"x_standin":{"status":503}}'
            status, _, answer = await post(url + "/v1/chat/completions", body)
            assert len(first.requests) == len(second.requests) == 1  # tried, then retried
            assert status == 503  # both busy: the engine's own answer is passed on
            assert answer["error"]["message"] == "stand-in error"

    run(scenario)


def test_stream_broken_mid_way_ends_with_an_error_event() -> None:
    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)]) as url:
            body = (
                b'{"model":"m","messages":[{"role":"user"}],"stream":true,'
                b'"x_standin":{"chunks":5,"break_after":2}}'
            )
            status, _, text = await post_stream(url, body)
            assert status == 200
            assert "w1" in text and '"code":"upstream_error"' in text
            assert "[DONE]" not in text

    run(scenario)


def test_client_disconnect_cancels_the_upstream_request() -> None:
    async def scenario() -> None:
        async with standin() as (backend, burl), gateway([model("m", burl)]) as url:
            body = (
                b'{"model":"m","messages":[{"role":"user"}],"stream":true,'
                b'"x_standin":{"chunks":100,"chunk_delay_s":0.05}}'
            )
            async with (
                aiohttp.ClientSession() as s,
                s.post(url + "/v1/chat/completions", data=body) as r,
            ):
                await r.content.readuntil(b"\n\n")
            for _ in range(40):
                if backend.disconnects:
                    break
                await asyncio.sleep(0.05)
            assert backend.disconnects == 1
            _, _, page = await get(url + "/metrics")
            values = samples(page.decode())
            assert values[("llmhost_requests_total", (("model", "m"), ("status", "499")))] == 1

    run(scenario)


def test_engine_credentials_come_from_config_not_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENGINE_KEY", "engine-secret")

    async def scenario() -> None:
        async with (
            standin() as (backend, burl),
            gateway(
                [
                    model(
                        "m",
                        burl,
                        aliases=("fast",),
                        api_key_env="ENGINE_KEY",
                        upstream_model="org/model-v1",
                    )
                ]
            ) as url,
        ):
            c = openai.AsyncOpenAI(base_url=url + "/v1", api_key="client-key", max_retries=0)
            await c.chat.completions.create(
                model="fast", messages=[{"role": "user", "content": "x"}]
            )
            assert backend.headers[-1]["Authorization"] == "Bearer engine-secret"
            assert backend.requests[-1]["model"] == "org/model-v1"

    run(scenario)


def test_embeddings_models_health_and_unknown_routes() -> None:
    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl, aliases=("fast",))]) as url:
            c = client(url)
            emb = await c.embeddings.create(model="m", input="hello")
            assert emb.data[0].embedding == [0.1, 0.2]
            listed = await c.models.list()
            assert [m.id for m in listed.data] == ["m"]
            assert (await get(url + "/health"))[0] == 200
            assert (await get(url + "/ready"))[0] == 200
            status, _, body = await get(url + "/v2/nothing")
            assert status == 404 and b'"code":"not_found"' in body
            status, headers, body = await get(url + "/v1/chat/completions")
            assert status == 405 and headers["Allow"] == "POST"

    run(scenario)


def test_queue_holds_what_fits_and_refuses_the_rest_with_retry_after() -> None:
    async def scenario() -> None:
        async with (
            standin() as (backend, burl),
            gateway(
                [model("m", burl, max_inflight_per_replica=1, queue_size=1, queue_wait_s=3)]
            ) as url,
        ):
            slow = b'{"model":"m","messages":[{"role":"user"}],"x_standin":{"delay_s":0.6}}'
            first = asyncio.ensure_future(post(url + "/v1/chat/completions", slow))
            await asyncio.sleep(0.1)
            second = asyncio.ensure_future(post(url + "/v1/chat/completions", slow))
            await asyncio.sleep(0.1)
            _, _, page = await get(url + "/metrics")
            assert samples(page.decode())[("llmhost_queued_requests", (("model", "m"),))] == 1
            status, headers, answer = await post(url + "/v1/chat/completions", slow)
            assert status == 503 and headers["Retry-After"] == "2"  # queue full: refused at once
            assert answer["error"]["code"] == "no_backend"
            assert [(await first)[0], (await second)[0]] == [200, 200]  # the queued one waited
            assert len(backend.requests) == 2

    run(scenario)


def test_prefix_routing_keeps_a_prefix_on_one_replica() -> None:
    async def scenario() -> None:
        async with (
            standin() as (a, url_a),
            standin() as (b, url_b),
            gateway([model("m", url_a, url_b, routing="prefix")]) as url,
        ):
            c = client(url)
            for i in range(6):
                await c.chat.completions.create(
                    model="m",
                    messages=[
                        {"role": "system", "content": "Shared system prompt " * 20},
                        {"role": "user", "content": f"question {i}"},
                    ],
                )
            assert sorted([len(a.requests), len(b.requests)]) == [0, 6]

    run(scenario)


def test_fallback_chain_and_tiers_route_around_a_model_that_is_down() -> None:
    async def scenario() -> None:
        dead = "http://127.0.0.1:9"
        async with (
            standin() as (small, small_url),
            gateway(
                [model("big", dead, fallback=("small",)), model("small", small_url)],
                wait_ready=False,
                tiers={"fast": ("small",), "quality": ("big", "small")},
            ) as url,
        ):
            await asyncio.sleep(0.8)  # health checks find `big` down
            body = b'{"model":"%s","messages":[{"role":"user","content":"x"}]}'
            for name in (b"big", b"quality", b"fast"):
                status, _, answer = await post(url + "/v1/chat/completions", body % name)
                assert status == 200, answer
            status, _, _ = await post(
                url + "/v1/chat/completions", body % b"big", **{"x-llmhost-tier": "fast"}
            )
            assert status == 200 and len(small.requests) == 4
            status, _, answer = await post(url + "/v1/chat/completions", body % b"nope")
            assert status == 404 and "fast" in answer["error"]["message"]

    run(scenario)


def test_a_replica_failing_in_a_row_is_ejected_despite_a_healthy_health_url() -> None:
    async def scenario() -> None:
        async with (
            standin(fail_status=500) as (bad, bad_url),
            standin() as (_, good_url),
            gateway([model("m", bad_url, good_url, routing="round-robin")]) as url,
        ):
            # Different senders (open gateway: different prompts) all see the replica fail.
            bodies = [
                b'{"model":"m","messages":[{"role":"user","content":"x%d"}]}' % i for i in range(10)
            ]
            statuses = [(await post(url + "/v1/chat/completions", b))[0] for b in bodies]
            body = bodies[0]
            await asyncio.sleep(0.5)  # health checks pass, but the ejection holds
            statuses += [(await post(url + "/v1/chat/completions", body))[0] for _ in range(4)]
            assert len(bad.requests) == 3 and statuses.count(500) == 3
            assert statuses[-8:] == [200] * 8

    run(scenario)
