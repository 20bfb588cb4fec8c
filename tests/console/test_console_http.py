"""The console over plain HTTP (no browser): where it is on, its headers and cookies, CSRF on
every form, and each admin role seeing only what `roles.PERMISSIONS` gives it."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from llmhost.config import ServerConfig
from llmhost.gateway.console.sessions import Sessions
from llmhost.gateway.console.views import RECENT_S
from llmhost.gateway.keys import create_key
from llmhost.gateway.roles import AdminPrincipal, create_admin
from llmhost.gateway.server import Parts
from tests.support.harness import in_process, model, settled, standin

ADMIN = "console-http-admin-key-0123456789"
Client = TestClient[web.Request, web.Application]


@pytest.fixture(autouse=True)
def admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMHOST_ADMIN_KEY", ADMIN)


@asynccontextmanager
async def console(**server: Any) -> AsyncIterator[tuple[Client, Parts]]:
    settings = {"auth": "keys", "console": True, **server}
    async with (
        standin() as (_, url),
        in_process([model("m", url)], **settings) as (client, parts),
    ):
        yield client, parts


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def log_in(client: Client, key: str = ADMIN) -> ClientResponse:
    page = await (await client.get("/ui/login")).text()
    return await client.post(
        "/ui/login", data={"csrf": csrf_of(page), "key": key}, allow_redirects=False
    )


def test_the_console_is_on_for_loopback_and_off_elsewhere_unless_asked() -> None:
    assert ServerConfig().console_on()
    assert not ServerConfig(host="0.0.0.0").console_on()
    assert ServerConfig(host="0.0.0.0", console=True).console_on()
    assert not ServerConfig(console=False).console_on()

    async def scenario() -> None:
        async with console(console=False) as (client, _):
            assert (await client.get("/ui/login")).status == 404
            assert (await client.get("/v1/models")).status == 401  # the API is unchanged

    uvloop.run(scenario())


def test_pages_carry_a_strict_policy_no_inline_code_and_no_caching() -> None:
    async def scenario() -> None:
        async with console() as (client, _):
            login = await client.get("/ui/login")
            html = await login.text()
            policy = login.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "default-src 'none'" in policy
            assert "unsafe" not in policy and "frame-ancestors 'none'" in policy
            assert login.headers["Cache-Control"] == "no-store"
            assert login.headers["X-Content-Type-Options"] == "nosniff"
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # no inline script
            assert " style=" not in html
            assert not re.search(r"\son[a-z]+=", html)  # no inline handlers
            script = await client.get("/ui/static/console.js")
            assert script.status == 200 and script.content_type == "text/javascript"
            assert (await client.get("/ui/static/..%2Fhandlers.py")).status == 404
            assert (await client.get("/ui/static/missing.js")).status == 404

    uvloop.run(scenario())


def test_login_sets_a_strict_session_cookie_and_refuses_other_keys() -> None:
    async def scenario() -> None:
        async with console() as (client, _):
            assert (await client.get("/ui/overview", allow_redirects=False)).status == 303
            assert (await client.get("/ui/api/overview")).status == 401
            refused = await log_in(client, "llmh-0000000000-" + "x" * 43)
            assert refused.status == 401
            assert "not an admin key" in await refused.text()
            answer = await log_in(client)
            assert answer.status == 303 and answer.headers["Location"] == "/ui/overview"
            cookie = next(
                c for c in answer.headers.getall("Set-Cookie") if c.startswith("llmhost_console=")
            )
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
            assert "Secure" not in cookie  # loopback: plain http is all there is
            overview = await client.get("/ui/api/overview")
            assert (await overview.json())["models"][0]["ready"] == 1
            page = await (await client.get("/ui/overview")).text()
            out = await client.post("/ui/logout", data={"csrf": csrf_of(page)})
            assert out.status == 200  # back on the login page
            assert (await client.get("/ui/api/overview")).status == 401

            # A login form needs its own CSRF cookie: a cross-site post carries none.
            client.session.cookie_jar.clear()
            forged = await client.post("/ui/login", data={"csrf": "x", "key": ADMIN})
            assert forged.status == 401 and "expired" in await forged.text()

    uvloop.run(scenario())


def test_the_cookie_is_secure_off_loopback() -> None:
    async def scenario() -> None:
        async with console(host="0.0.0.0") as (client, _):
            form = await client.get("/ui/login")
            login_cookie = form.headers["Set-Cookie"]
            assert "Secure" in login_cookie
            token = csrf_of(await form.text())
            answer = await client.post(
                "/ui/login",
                data={"csrf": token, "key": ADMIN},
                headers={"Cookie": f"llmhost_console_login={token}"},  # the jar keeps no
                allow_redirects=False,  # Secure cookie over plain http
            )
            assert answer.status == 303
            cookies = answer.headers.getall("Set-Cookie")
            assert any(c.startswith("llmhost_console=") and "Secure" in c for c in cookies)

    uvloop.run(scenario())


def test_every_form_needs_the_sessions_csrf_token() -> None:
    async def scenario() -> None:
        async with console() as (client, parts):
            await log_in(client)
            for token in (None, "not-the-token"):
                data = {"tenant": "forged"} | ({"csrf": token} if token else {})
                answer = await client.post("/ui/keys", data=data, allow_redirects=False)
                assert answer.status == 403
                budget = {"tenant": "forged", "monthly_tokens": "5"}
                budget |= {"csrf": token} if token else {}
                assert (await client.post("/ui/tenants", data=budget)).status == 403
            assert parts.tenancy.store.keys("forged") == []
            assert parts.tenancy.store.tenant("forged") is None
            page = await (await client.get("/ui/keys")).text()
            made = await client.post("/ui/keys", data={"csrf": csrf_of(page), "tenant": "real"})
            assert made.status == 200 and 'id="new-secret"' in await made.text()
            assert len(parts.tenancy.store.keys("real")) == 1

    uvloop.run(scenario())


def test_bad_form_input_is_a_message_not_a_key() -> None:
    async def scenario() -> None:
        async with console() as (client, parts):
            await log_in(client)
            csrf = csrf_of(await (await client.get("/ui/keys")).text())
            for data in (
                {"tenant": "acme", "rpm": "lots"},
                {"tenant": "acme", "rpm": "0"},
                {"tenant": "no spaces"},
            ):
                page = await (await client.post("/ui/keys", data={"csrf": csrf, **data})).text()
                assert "No key made" in page, data
                assert "new-secret" not in page
            budget = {"csrf": csrf, "tenant": "acme", "monthly_tokens": "-5"}
            page = await (await client.post("/ui/tenants", data=budget)).text()
            assert "Budget unchanged" in page
            assert parts.tenancy.store.keys("acme") == []

    uvloop.run(scenario())


def test_each_role_sees_only_its_pages() -> None:
    async def scenario() -> None:
        async with console() as (client, parts):
            store = parts.tenancy.store
            viewer = create_admin(store, "viewer", "v", "test")[0]
            auditor = create_admin(store, "auditor", "a", "test")[0]

            assert (await log_in(client, viewer)).status == 303
            overview = await (await client.get("/ui/overview")).text()
            assert 'href="/ui/keys"' not in overview and 'href="/ui/audit"' not in overview
            assert (await client.get("/ui/keys")).status == 403
            assert (await client.get("/ui/audit")).status == 403
            usage = await (await client.get("/ui/usage")).text()
            assert "Tokens per model" in usage and '<th scope="col">Tenant</th>' not in usage
            forged = await client.post("/ui/keys", data={"csrf": csrf_of(usage), "tenant": "v"})
            assert forged.status == 403 and store.keys("v") == []

            client.session.cookie_jar.clear()
            assert (await log_in(client, auditor)).status == 303
            keys = await client.get("/ui/keys")
            assert keys.status == 200 and "create-key" not in await keys.text()
            assert (await client.get("/ui/audit")).status == 200
            csrf = csrf_of(await keys.text())
            assert (await client.post("/ui/keys", data={"csrf": csrf, "tenant": "a"})).status == 403

    uvloop.run(scenario())


def test_sessions_expire_and_keep_no_secret() -> None:
    now = [1000.0]
    sessions = Sessions(ttl_s=60, clock=lambda: now[0])
    cookie, session = sessions.open(AdminPrincipal("env", "operator"))
    assert sessions.get(cookie) is session
    assert cookie not in repr(sessions.__dict__)  # kept by digest only
    session.secret = "llmh-secret"
    assert session.take_secret() == "llmh-secret" and session.take_secret() is None
    now[0] += 61
    assert sessions.get(cookie) is None
    assert sessions.get(None) is None and sessions.get("forged") is None


def test_the_overview_shows_the_last_minutes_rates_from_the_request_records() -> None:
    async def scenario() -> None:
        async with console() as (client, parts):
            key = create_key(parts.tenancy.store, "acme")[0]
            chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            headers = {"Authorization": f"Bearer {key}"}
            for extra in ({}, {"x_standin": {"status": 500}}, {}, {"stream": True}):
                answer = await client.post(
                    "/v1/chat/completions", json=chat | extra, headers=headers
                )
                await answer.read()
                assert answer.status == (500 if "x_standin" in extra else 200)
            await settled(parts)
            records = parts.tenancy.store.audit()
            assert len(records) == 4
            output = sum(r.completion_tokens for r in records)
            assert output >= 2 * 6  # the stand-in's 6 per plain answer, and the stream's
            await log_in(client)
            figures = (await (await client.get("/ui/api/overview")).json())["models"][0]
            assert figures["tokens_per_s"] == round(output / RECENT_S, 3)
            assert figures["error_rate"] == 0.25
            assert figures["ttft_p50_ms"] is not None
            assert figures["ttft_p95_ms"] >= figures["ttft_p50_ms"]

    uvloop.run(scenario())


def bench_result(padding: int) -> bytes:
    """A results document as `llmhost bench --out` writes it, its request list `padding`
    bytes long (a real run keeps every request)."""
    stats = {"median": 0.01, "p99": 0.02}
    summary = {
        "succeeded": 3,
        "errors": {},
        "request_throughput": 2.0,
        "output_token_throughput": 120.0,
        "total_token_throughput": 600.0,
        "goodput": 2.0,
        "ttft_s": stats,
        "tpot_s": stats,
        "itl_s": stats,
        "latency_s": stats,
    }
    level = {"load": "concurrency 1", "concurrency": 1, "summary": summary}
    level["requests"] = [{"pad": "x" * padding}]
    return json.dumps({"meta": {"model": "m", "url": "http://x/v1"}, "levels": [level]}).encode()


def upload(csrf: str | None, content: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    form.add_field("plan", content, filename="results.json", content_type="application/json")
    return form


def test_a_bench_result_over_the_body_limit_opens_but_only_with_the_token() -> None:
    async def scenario() -> None:
        async with console() as (client, _):
            await log_in(client)
            csrf = csrf_of(await (await client.get("/ui/plans")).text())
            big = bench_result(2 * 1024 * 1024)  # over the 1 MiB request body limit
            page = await client.post("/ui/plans", data=upload(csrf, big))
            html = await page.text()
            assert page.status == 200 and 'id="sweep"' in html and "concurrency 1" in html
            assert (await client.post("/ui/plans", data=upload(None, big))).status == 403
            wrong = await client.post("/ui/plans", data=upload("forged", bench_result(10)))
            assert wrong.status == 403
            huge = await client.post("/ui/plans", data=upload(csrf, bench_result(17 << 20)))
            assert huge.status == 400 and "over 16 MiB" in await huge.text()
            junk = await client.post("/ui/plans", data=upload(csrf, b'{"levels": [{}]}'))
            assert junk.status == 400 and "lacks its summary" in await junk.text()

    uvloop.run(scenario())
