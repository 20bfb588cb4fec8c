"""Keys, limits, budgets and the audit log through the gateway (in front of a stand-in backend,
with a real SQLite store), and the hardening cases other gateways were bitten by."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import uvloop

from llmhost.gateway.keys import create_key
from llmhost.gateway.store import open_store
from tests.support.harness import gateway, model, standin

CANARY_PROMPT = "canary-prompt-7f3a9e"
CHAT = {"model": "m", "messages": [{"role": "user", "content": CANARY_PROMPT}], "max_tokens": 8}


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(scenario())


def keyed(tmp_path: Path, **server: Any) -> dict[str, Any]:
    return {"auth": "keys", "store_url": f"sqlite:///{tmp_path / 'llmhost.db'}", **server}


def new_key(tmp_path: Path, tenant: str = "acme", **limits: Any) -> str:
    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    try:
        return create_key(store, tenant, **limits)[0]
    finally:
        store.close()


async def call(
    url: str,
    key: str | None,
    body: Any = CHAT,
    path: str = "/v1/chat/completions",
    method: str = "POST",
    **headers: str,
) -> tuple[int, dict[str, str], Any]:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method, url + path, data=data if method in ("POST", "PUT") else None, headers=headers
        ) as r,
    ):
        raw = await r.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return r.status, dict(r.headers), parsed


def audit_rows(tmp_path: Path) -> list[Any]:
    time.sleep(0.2)  # the writer commits every 50 ms
    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    try:
        return store.audit()
    finally:
        store.close()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer ' OR 1=1 --",
        "Bearer llmh-0123456789-' OR '1'='1'; DROP TABLE api_keys; --xx",
        "Bearer llmh-0123456789-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_missing_malformed_unknown_and_injected_keys_get_401(
    tmp_path: Path, header: str | None
) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path)
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            headers = {"Authorization": header} if header is not None else {}
            status, _, body = await call(url, None, **headers)
            assert status == 401 and body["error"]["code"] == "invalid_api_key"
            assert backend.requests == []
            assert (await call(url, key))[0] == 200  # the store survived whatever was sent

    run(scenario)


def test_expired_revoked_and_model_outside_the_list(tmp_path: Path) -> None:
    async def scenario() -> None:
        expired = new_key(tmp_path, expires_at=time.time() + 0.5)
        limited = new_key(tmp_path, models=["other"])
        revoked = new_key(tmp_path)
        async with (
            standin() as (_, burl),
            gateway([model("m", burl), model("other", burl)], **keyed(tmp_path)) as url,
        ):
            await asyncio.sleep(0.6)
            status, _, body = await call(url, expired)
            assert status == 401 and "expired" in body["error"]["message"]
            status, _, body = await call(url, limited)
            assert status == 403 and body["error"]["code"] == "model_not_allowed"
            c = openai.AsyncOpenAI(base_url=url + "/v1", api_key=limited, max_retries=0)
            assert [m.id for m in (await c.models.list()).data] == ["other"]
            store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
            store.revoke(revoked[:15])
            store.close()
            status, _, body = await call(url, revoked)
            assert status == 401 and "revoked" in body["error"]["message"]

    run(scenario)


def test_rpm_limit_gives_429_with_openai_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path, rpm=3)
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            c = openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
            for _ in range(3):
                await c.chat.completions.create(model="m", messages=CHAT["messages"])
            with pytest.raises(openai.RateLimitError) as caught:
                await c.chat.completions.create(model="m", messages=CHAT["messages"])
            headers = caught.value.response.headers
            assert headers["x-ratelimit-limit-requests"] == "3"
            assert headers["x-ratelimit-remaining-requests"] == "0"
            assert int(headers["retry-after"]) >= 19
            assert headers["x-ratelimit-reset-requests"].endswith("s")
            assert len(backend.requests) == 3

    run(scenario)


def test_monthly_budget_stops_requests_once_spent(tmp_path: Path) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path, monthly_tokens=100)  # each stand-in answer uses 18 tokens
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            statuses = []
            for _ in range(8):
                status, _, body = await call(url, key, {**CHAT, "max_tokens": 1})
                statuses.append(status)
                await asyncio.sleep(0.05)  # let the reconciliation land
            # Each admission reserves 37 tokens (the prompt's 20 bytes, 16 for the chat template,
            # max_tokens 1) and reconciles to the 18 used: admitted while spent + 37 <= 100, so
            # four go through, then none.
            assert statuses == [200] * 4 + [429] * 4
            assert body["error"]["code"] == "insufficient_quota"
            assert "72 of its 100" in body["error"]["message"]  # spent, never overrun
            assert len(backend.requests) == 4

    run(scenario)


def test_tenant_usage_and_budget_share_are_exported_from_the_store(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from llmhost.gateway.metrics import GatewayMetrics
    from llmhost.gateway.store import AuditRecord
    from llmhost.gateway.tenancy import export_budgets

    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    store.set_tenant("acme", 1000, keep_budget=False)
    store.set_tenant("free", None, keep_budget=False)
    now = time.time()
    store.add_audit(
        [
            AuditRecord(now, "k", "acme", "m", "r", 200, 300, 150, None, 9.0, None),
            AuditRecord(now, "k", "free", "m", "r", 200, 10, 5, None, 9.0, None),
        ]
    )
    metrics = GatewayMetrics()

    async def scenario() -> None:
        task = asyncio.ensure_future(export_budgets(store, metrics, every_s=0.05))
        await asyncio.sleep(0.3)
        task.cancel()

    uvloop.run(scenario())
    values = {
        (s.name, tuple(s.labels.values())): s.value
        for f in text_string_to_metric_families(metrics.render().decode())
        for s in f.samples
    }
    assert values[("llmhost_tenant_tokens_month", ("acme",))] == 450
    assert values[("llmhost_tenant_budget_used_ratio", ("acme",))] == 0.45
    assert values[("llmhost_tenant_tokens_month", ("free",))] == 15
    assert ("llmhost_tenant_budget_used_ratio", ("free",)) not in values  # no budget, no share


def test_audit_has_counts_and_a_prompt_hash_never_content_or_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jsonl = tmp_path / "audit.jsonl"

    async def scenario() -> None:
        key = new_key(tmp_path)
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path, audit_jsonl=str(jsonl))) as url,
        ):
            assert (await call(url, key))[0] == 200
            bad = key[:-3] + "zzz"
            status, _, body = await call(url, bad)
            assert status == 401 and key not in json.dumps(body) and bad not in json.dumps(body)
            assert "authorization" not in {h.lower() for h in backend.headers[-1]}  # not forwarded

    run(scenario)
    rows = audit_rows(tmp_path)
    assert [r.status for r in rows] == [200, 401]
    ok = rows[0]
    assert ok.tenant == "acme" and ok.key_prefix and ok.prompt_tokens == 12
    assert ok.completion_tokens == 6 and ok.duration_ms > 0 and len(ok.prompt_sha256 or "") == 64
    assert rows[1].key_prefix is None  # an unknown key is not recorded, not even its prefix
    entries = [json.loads(line) for line in jsonl.read_text().splitlines()]
    lines = [e for e in entries if e["trail"] == "request"]
    assert len(lines) == 2 and lines[0]["prompt_sha256"] == ok.prompt_sha256
    admin = {e["action"]: e for e in entries if e["trail"] == "admin"}
    assert admin["auth_failure"]["count"] == 1  # the failed key, summarised on the admin trail
    assert admin["config_loaded"]["after"]["models"] == ["m"]
    everything = (
        jsonl.read_text()
        + caplog.text
        + (tmp_path / "llmhost.db").read_bytes().decode(errors="replace")
    )
    assert CANARY_PROMPT not in everything and "Hello from the stand-in" not in everything
    assert "llmh-" not in caplog.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "//v1/chat/completions"),
        ("POST", "/v1/chat/completions/"),
        ("POST", "/V1/Chat/Completions"),
        ("POST", "/v1/chat%2Fcompletions"),
        ("POST", "/v1/../v1/chat/completions"),
        ("POST", "/admin/../v1/chat/completions"),
        ("HEAD", "/v1/chat/completions"),
        ("OPTIONS", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/embeddings"),
    ],
)
def test_no_path_or_method_trick_reaches_an_engine_without_a_key(
    tmp_path: Path, method: str, path: str
) -> None:
    async def scenario() -> None:
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            status, _, _ = await call(url, None, path=path, method=method)
            assert status in (401, 404, 405)
            assert backend.requests == []

    run(scenario)


def test_clients_never_choose_the_upstream(tmp_path: Path) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path)
        async with (
            standin() as (attacker, attacker_url),
            standin() as (engine, burl),
            gateway([model("m", burl)], **keyed(tmp_path)) as url,
        ):
            body = {
                **CHAT,
                "api_base": attacker_url,
                "base_url": attacker_url,
                "url": attacker_url + "/v1/chat/completions",
            }
            host = attacker_url.removeprefix("http://")
            status, _, _ = await call(url, key, body, Host=host, **{"X-Forwarded-Host": host})
            assert status == 200 and len(engine.requests) == 1 and attacker.requests == []

    run(scenario)


def test_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path)
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                f"{key}\r\nContent-Length: 50000000\r\n\r\n{{".encode()
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)  # not 50 MB later
            assert head.startswith(b"HTTP/1.1 413")
            writer.close()

    run(scenario)


def test_slow_body_times_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path)
        async with (
            standin() as (backend, burl),
            gateway([model("m", burl)], **keyed(tmp_path, body_read_timeout_s=0.5)) as url,
        ):
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                f"{key}\r\nContent-Length: 100\r\n\r\n{{".encode()
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
            assert head.startswith(b"HTTP/1.1 408") and backend.requests == []
            writer.close()

    run(scenario)


def test_admin_api_creates_lists_and_revokes_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMHOST_ADMIN_KEY", "admin-secret-1234")

    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            status, _, _ = await call(url, None, {"tenant": "t"}, path="/admin/keys")
            assert status == 401
            user = new_key(tmp_path)
            assert (await call(url, user, {"tenant": "t"}, path="/admin/keys"))[0] == 401
            status, _, made = await call(
                url, "admin-secret-1234", {"tenant": "t", "rpm": 5}, path="/admin/keys"
            )
            assert status == 201 and made["record"]["rpm"] == 5
            assert (await call(url, made["key"]))[0] == 200
            assert (await call(url, made["key"], b"{not json"))[0] == 400  # names no model
            status, _, listed = await call(
                url, "admin-secret-1234", path="/admin/keys", method="GET"
            )
            text = json.dumps(listed)
            assert status == 200 and made["key"] not in text and "hash" not in text
            prefix = made["record"]["prefix"]
            assert (
                await call(url, "admin-secret-1234", path=f"/admin/keys/{prefix}", method="DELETE")
            )[0] == 200
            await asyncio.sleep(0.1)
            status, _, usage = await call(
                url, "admin-secret-1234", path="/admin/usage?tenant=t", method="GET"
            )
            assert status == 200 and [row["requests"] for row in usage["data"]] == [1]
            assert usage["data"][0]["model"] == "m" and usage["unrouted_requests"] == 1
            bad = await call(
                url, "admin-secret-1234", {"tenant": "t", "rpm": 0}, path="/admin/keys"
            )
            assert bad[0] == 400 and "rpm" in bad[2]["error"]["message"]

    run(scenario)


def test_admin_api_is_off_without_an_admin_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            status, _, body = await call(url, "anything", path="/admin/keys", method="GET")
            assert status == 403 and "LLMHOST_ADMIN_KEY" in body["error"]["message"]

    run(scenario)


def test_audit_retention_applies_when_the_gateway_starts(tmp_path: Path) -> None:
    from llmhost.gateway.store import AuditRecord

    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    old, recent = time.time() - 10 * 86400, time.time() - 86400
    store.add_audit(
        [AuditRecord(ts, None, "t", "m", None, 200, 1, 1, None, 1.0, None) for ts in (old, recent)]
    )
    store.close()

    async def scenario() -> None:
        async with (
            standin() as (_, burl),
            gateway([model("m", burl)], **keyed(tmp_path, audit_retention_days=5)),
        ):
            await asyncio.sleep(0.2)

    run(scenario)
    assert [round(r.ts) for r in audit_rows(tmp_path)] == [round(recent)]


def test_slow_headers_are_cut_off(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with (
            standin() as (_, burl),
            gateway([model("m", burl)], **keyed(tmp_path, idle_timeout_s=1.0)) as url,
        ):
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            started = time.monotonic()
            closed_after = None
            for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
                writer.write(bytes([byte]))  # one byte every 100 ms, never finishing the headers
                await asyncio.sleep(0.1)
                if reader.at_eof() or writer.is_closing():
                    closed_after = time.monotonic() - started
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    if await asyncio.wait_for(reader.read(1), 0.001) == b"":
                        closed_after = time.monotonic() - started
                        break
            assert closed_after is not None and closed_after < 2.5
            writer.close()

    run(scenario)


def test_a_long_stream_outlives_the_idle_timeout(tmp_path: Path) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path)
        async with (
            standin() as (_, burl),
            gateway([model("m", burl)], **keyed(tmp_path, idle_timeout_s=0.5)) as url,
        ):
            body = {**CHAT, "stream": True, "x_standin": {"chunks": 8, "chunk_delay_s": 0.2}}
            status, _, text = await call(url, key, json.dumps(body).encode())
            assert status == 200 and "data: [DONE]" in text and "w7" in text

    run(scenario)
