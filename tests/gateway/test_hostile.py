"""Hostile clients and misbehaving engines against the gateway, black-box (real sockets, a
stand-in backend, a real SQLite store): one request must never hurt another tenant or the books.

Each test names the defect it pins, numbered as in issue 13.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from llmhost.gateway.store import open_store
from tests.gateway.test_tenancy import audit_rows, call, keyed, new_key
from tests.support.harness import gateway, model, standin


def run(scenario: Any) -> None:
    uvloop.run(scenario())


def chat(content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def is_openai_error(body: Any, code: str | None = None) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and isinstance(error.get("type"), str)
        and (code is None or error.get("code") == code)
    )


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


MALFORMED = [
    chat([{"type": "text", "text": 5}]),  # prefix routing read it as text
    chat([{"type": "text", "text": {"a": 1}}]),
    chat([{"type": "text"}]),
    chat([5]),
    chat({"text": "x"}),
    chat("hi", n="3"),
    chat("hi", n=0),
    chat("hi", n=10**6),
    chat("hi", max_tokens=2**64 - 1),
    chat("hi", max_tokens=1.5),
    chat("hi", max_tokens=True),
    chat("hi", stream="yes"),
    chat("hi", stream_options=[1]),
    chat("hi", temperature="hot"),
    chat("hi", stop={"a": 1}),
    chat("hi", stop=[1, 2]),
    chat("hi", logit_bias=[1]),
    chat("hi", extra=nested(300)),  # orjson cannot serialise past 255 levels
    chat(nested(300)),
    {"model": "m", "messages": [{"role": 7, "content": "x"}]},
    {"model": "m", "messages": [{"content": "x"}]},
    {"model": "m", "messages": "hello"},
    {"model": ["m"], "messages": [{"role": "user", "content": "x"}]},
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_1_malformed_requests_are_400s_that_release_the_keys_slot(
    tmp_path: Path, body: dict[str, Any]
) -> None:
    """Defect 1: wrong types and deep nesting raised after admission, a plain-text 500 with no
    audit record and the key's only concurrency slot never released."""

    async def scenario() -> None:
        key = new_key(tmp_path, max_concurrent=1)
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl, routing="prefix")], **keyed(tmp_path)) as url,
        ):
            status, headers, answer = await call(url, key, body)
            assert status == 400, answer
            assert headers["Content-Type"].startswith("application/json")
            assert is_openai_error(answer, "invalid_value"), answer
            # The slot came back: the same key is served at once.
            status, _, answer = await call(url, key, chat("fine"))
            assert status == 200, answer
            assert backend.requests == [chat("fine")]
        rows = audit_rows(tmp_path)
        assert [r.status for r in rows] == [400, 200]

    run(scenario)


def test_2_a_stream_cut_before_its_usage_is_charged_what_was_delivered(tmp_path: Path) -> None:
    """Defect 2: a client that closed the socket before the usage chunk was charged nothing."""

    async def scenario() -> None:
        key = new_key(tmp_path, monthly_tokens=10**6)
        body = chat("0123456789" * 10, stream=True, max_tokens=100)
        body["x_standin"] = {"chunks": 50, "chunk_delay_s": 0.02}
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            headers = {"Authorization": f"Bearer {key}"}
            async with (
                aiohttp.ClientSession() as s,
                s.post(url + "/v1/chat/completions", json=body, headers=headers) as r,
            ):
                assert r.status == 200
                seen = 0
                while seen < 5:
                    seen += (await r.content.readuntil(b"\n\n")).count(b"w")
            await asyncio.sleep(0.5)  # the gateway settles after the client left
            for _ in range(50):
                if backend.disconnects:
                    break
                await asyncio.sleep(0.05)
            assert backend.disconnects == 1  # the engine was told to stop
        rows = audit_rows(tmp_path)
        assert len(rows) == 1 and rows[0].status == 499
        assert rows[0].completion_tokens >= 5  # a token per content event relayed, at least
        assert rows[0].prompt_tokens >= 100  # the prompt as reserved: 100 bytes of digits
        store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
        try:
            assert store.tokens_since("acme", 0) >= 105  # the ledger: nothing refunded
        finally:
            store.close()

    run(scenario)


def test_3_a_budget_is_overrun_by_at_most_one_reservation(tmp_path: Path) -> None:
    """Defect 3: digit-heavy prompts (a token per character) were reserved at bytes / 4 and
    `n` = 8 multiplied output the reservation never counted; 20 concurrent streams overran the
    budget many times over."""
    budget = 20_000
    prompt = "0123456789" * 200  # 2,000 characters, 2,000 tokens for a digit-splitting tokenizer
    body = chat(prompt, stream=True, n=8, max_tokens=16)
    body["x_standin"] = {"chunks": 16, "chunk_delay_s": 0.01, "usage": "count"}
    reservation = len(prompt) + 16 + 8 * 16  # prompt bytes, template allowance, n x max_tokens

    async def scenario() -> None:
        key = new_key(tmp_path, monthly_tokens=budget)
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            for _wave in range(3):
                results = await asyncio.gather(*(call(url, key, body) for _ in range(20)))
                statuses = [status for status, _, _ in results]
                assert set(statuses) <= {200, 429}, statuses
                await asyncio.sleep(0.3)
            assert backend.requests  # some were served
        used = sum(r.prompt_tokens + r.completion_tokens for r in audit_rows(tmp_path))
        assert used > budget - 2 * reservation  # the budget was used...
        assert used <= budget + reservation  # ...and overrun by at most one reservation

    run(scenario)


def test_4_a_record_with_a_nul_byte_does_not_stop_the_audit(tmp_path: Path) -> None:
    """Defect 4 (the request side): a model name with a NUL byte is audited, cleaned, and the
    records after it are written too (the PostgreSQL store's side: test_store_faults.py)."""

    async def scenario() -> None:
        key = new_key(tmp_path)
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            status, _, answer = await call(url, key, {**chat(), "model": "evil\u0000model"})
            assert status == 404 and is_openai_error(answer, "model_not_found")
            assert (await call(url, key, chat()))[0] == 200
        rows = audit_rows(tmp_path)
        assert [r.status for r in rows] == [404, 200]
        assert "\x00" not in rows[0].model and rows[0].model.startswith("evil")

    run(scenario)


def test_4_a_full_jsonl_disk_leaves_the_sql_audit_intact(tmp_path: Path) -> None:
    """Defect 4: a write error in the JSON-lines sink killed the writer thread, and the SQL
    audit with it. /dev/full refuses every write with ENOSPC."""

    async def scenario() -> None:
        key = new_key(tmp_path)
        server = keyed(tmp_path, audit_jsonl="/dev/full")
        async with standin() as (_, burl), gateway([model("m", burl)], **server) as url:
            for _ in range(3):
                assert (await call(url, key, chat()))[0] == 200
                await asyncio.sleep(0.15)  # a flush (and a failed JSON-lines write) in between
            _, _, text = await call(url, None, method="GET", path="/metrics")
        assert [r.status for r in audit_rows(tmp_path)] == [200, 200, 200]
        dropped = metric(text, "llmhost_audit_dropped_total", reason="jsonl")
        assert dropped >= 3

    run(scenario)


def metric(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_6_one_tenant_cannot_eject_the_replicas_of_a_model(tmp_path: Path) -> None:
    """Defect 6: requests the engine answers with 500 ejected every replica, so every tenant
    got 503 while /ready said ready."""

    async def scenario() -> None:
        attacker, victim = new_key(tmp_path, "attacker"), new_key(tmp_path, "victim")
        poison = {**chat(), "x_standin": {"status": 500}}
        async with (
            standin() as (first, url1),
            standin() as (second, url2),
            gateway([model("m", url1, url2, routing="round-robin")], **keyed(tmp_path)) as url,
        ):
            for _ in range(12):
                status, _, answer = await call(url, attacker, poison)
                assert status == 500 and is_openai_error(answer)
            for _ in range(4):
                assert (await call(url, victim, chat()))[0] == 200
            status, _, ready = await call(url, None, method="GET", path="/ready")
            assert status == 200 and ready["replicas"]["m"]["ready"] == 2
            assert ready["replicas"]["m"]["ejected"] == 0
            assert len(first.requests) == len(second.requests) == 8  # both kept serving

    run(scenario)


def test_6_ready_tells_the_truth_about_ejected_replicas() -> None:
    async def scenario() -> None:
        async with (
            standin(fail_status=500) as (_, bad),
            gateway([model("m", bad)]) as url,
        ):
            for i in range(3):  # three senders (open gateway: three prompts) see it fail
                assert (await call(url, None, chat(f"x{i}")))[0] == 500
            status, _, ready = await call(url, None, method="GET", path="/ready")
            assert status == 503 and ready["waiting_for"] == ["m"]
            assert ready["replicas"]["m"]["ejected"] == 1

    run(scenario)


def test_7_metrics_can_require_a_key_and_list_no_tenants_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 7: /metrics needed no key and listed every tenant with its tokens and budget."""
    monkeypatch.setenv("TEST_METRICS_KEY", "scrape-secret")

    async def scenario() -> None:
        key = new_key(tmp_path, "bigcustomer", monthly_tokens=100_000)
        server = keyed(tmp_path, metrics_key_env="TEST_METRICS_KEY")
        async with standin() as (_, burl), gateway([model("m", burl)], **server) as url:
            assert (await call(url, key, chat()))[0] == 200
            status, _, answer = await call(url, None, method="GET", path="/metrics")
            assert status == 401 and is_openai_error(answer, "invalid_api_key")
            status, _, text = await call(url, "scrape-secret", method="GET", path="/metrics")
            assert status == 200 and "llmhost_requests_total" in text
            assert "bigcustomer" not in text

    run(scenario)


def test_7_metrics_on_their_own_port(tmp_path: Path) -> None:
    from llmhost.engines.supervisor import free_port

    async def scenario() -> None:
        port = free_port()
        async with standin() as (_, burl), gateway([model("m", burl)], metrics_port=port) as url:
            assert (await call(url, None, method="GET", path="/metrics"))[0] == 404
            status, _, text = await call(
                f"http://127.0.0.1:{port}", None, method="GET", path="/metrics"
            )
            assert status == 200 and "llmhost_requests_total" in text

    run(scenario)


ADMIN_BAD = [
    ({"tenant": "t", "rpm": 1.5}, "rpm"),
    ({"tenant": "t", "rpm": "5"}, "rpm"),
    ({"tenant": "t", "rpm": True}, "rpm"),
    ({"tenant": "t", "rpm": 2**40}, "rpm"),
    ({"tenant": "t", "models": "abc"}, "models"),
    ({"tenant": "t", "models": [1]}, "models.0"),
    ({"tenant": 5}, "tenant"),
    ({"tenant": "a b"}, "tenant"),
    ({"tenant": "t", "expires_at": "tomorrow"}, "expires_at"),
    ({"tenant": "t", "surprise": 1}, "surprise"),
    ({}, "tenant"),
    ([1, 2], None),
    ("text", None),
]


def test_7_admin_api_refuses_bad_input_with_400_never_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 7: the admin API answered 500 to non-UTF-8 header bytes and to wrong JSON types,
    accepted rpm 1.5 and turned models "abc" into a, b, c."""
    monkeypatch.setenv("LLMHOST_ADMIN_KEY", "admin-secret")

    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            for body, param in ADMIN_BAD:
                status, _, answer = await call(url, "admin-secret", body, path="/admin/keys")
                assert status == 400 and is_openai_error(answer), (body, answer)
                assert answer["error"]["param"] == param, (body, answer)
            for raw in (b"{", b"\xff\xfe", b""):
                status, _, answer = await call(url, "admin-secret", raw, path="/admin/keys")
                assert status == 400 and is_openai_error(answer), (raw, answer)
            status, _, answer = await raw_header_get(url + "/admin/keys", b"Bearer \xff\xfe\xc3")
            assert status == 401 and is_openai_error(answer, "invalid_api_key")
            for query in ("?since=nan", "?since=abc", "?tenant=%00"):
                status, _, answer = await call(
                    url, "admin-secret", method="GET", path="/admin/usage" + query
                )
                assert status == 400 and is_openai_error(answer), (query, answer)
            status, _, answer = await call(
                url, "admin-secret", {"tenant": "t", "models": ["m"]}, path="/admin/keys"
            )
            assert status == 201 and answer["record"]["models"] == ["m"]

    run(scenario)


async def raw_header_get(url: str, authorization: bytes) -> tuple[int, dict[str, str], Any]:
    """GET with an Authorization header of raw (non-UTF-8) bytes, sent over a bare socket."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + url.split("//")[1].split("/", 1)[1]
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + authorization
        + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, {}, json.loads(body) if body.strip() else None


async def close_delimited_engine(events: list[bytes], done: bool) -> tuple[asyncio.Server, str]:
    """An engine that frames its stream by closing the connection (no length, not chunked)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET"):  # health checks
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            await writer.drain()
            writer.close()
            return
        lengths = [
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ]
        body = await reader.readexactly(int(lengths[0].split(b":")[1]))
        if b'"stream":true' not in body.replace(b" ", b""):
            answer = b'{"choices":[{"message":{"content":"cut'  # dies mid-body
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + answer)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            for event in events:
                writer.write(event)
            if done:
                writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def test_7_an_engine_that_dies_mid_stream_is_not_a_clean_200(tmp_path: Path) -> None:
    """Defect 7: an engine ending its stream by closing the connection and dying mid-stream
    gave a clean-looking 200."""
    event = b'data: {"choices":[{"index":0,"delta":{"content":"w "}}]}\n\n'

    async def scenario() -> None:
        broken, burl = await close_delimited_engine([event, event], done=False)
        whole, wurl = await close_delimited_engine([event], done=True)
        async with gateway([model("m", burl), model("w", wurl)]) as url:
            c = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            async with aiohttp.ClientSession() as s:
                async with s.post(url + "/v1/chat/completions", json=chat(stream=True)) as r:
                    text = (await r.read()).decode()
                assert '"code":"upstream_error"' in text.replace(" ", "")
                with pytest.raises(openai.APIStatusError) as caught:
                    await c.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "x"}]
                    )
                assert caught.value.status_code == 502
                async with s.post(
                    url + "/v1/chat/completions", json={**chat(stream=True), "model": "w"}
                ) as r:
                    text = (await r.read()).decode()
                assert "upstream_error" not in text and "[DONE]" in text
        broken.close()
        whole.close()

    run(scenario)
