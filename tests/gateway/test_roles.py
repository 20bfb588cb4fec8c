"""Admin roles, route by route, and the admin trail: every admin action has its row, repeated
authentication failures are summarised, and `llmhost audit` reads both trails."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvloop

from llmhost.gateway.keys import create_key
from llmhost.gateway.roles import PERMISSIONS, ROLES, create_admin
from llmhost.gateway.store import open_store
from tests.gateway.test_tenancy import call, keyed
from tests.support.harness import gateway, model, standin

BODIES: dict[str, Any] = {
    "POST /admin/keys": {"tenant": "made-by-admin"},
    "PUT /admin/tenants/{name}": {"monthly_tokens": 5000},
}


def path_of(route: str, prefix: str) -> str:
    return route.replace("{prefix}", prefix).replace("{name}", "acme")


def admins(tmp_path: Path) -> dict[str, str]:
    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    try:
        return {role: create_admin(store, role, f"{role} key", "test")[0] for role in ROLES}
    finally:
        store.close()


def test_each_admin_route_refuses_the_roles_that_should_not_reach_it(tmp_path: Path) -> None:
    secrets = admins(tmp_path)
    store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    victims = [create_key(store, "acme")[1].prefix for _ in range(len(ROLES))]
    store.close()

    async def scenario() -> None:
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            for (method, route), allowed in PERMISSIONS.items():
                for i, role in enumerate(ROLES):
                    body = BODIES.get(f"{method} {route}")
                    status, _, answer = await call(
                        url,
                        secrets[role],
                        body if body is not None else b"",
                        path=path_of(route, victims[i]),
                        method=method,
                    )
                    label = f"{role} {method} {route}: {status} {answer}"
                    if role in allowed:
                        assert status in (200, 201), label
                    else:
                        assert status == 403, label
                        assert answer["error"]["code"] == "admin_only", label
            # No key at all, an API key, a revoked admin key: 401.
            api_key = create_key(open_store(f"sqlite:///{tmp_path / 'llmhost.db'}"), "t")[0]
            for token in (None, api_key, "llma-0000000000-" + "x" * 43):
                status, _, _ = await call(url, token, method="GET", path="/admin/usage")
                assert status == 401, token

    uvloop.run(scenario())


def test_viewers_see_usage_totals_not_tenants(tmp_path: Path) -> None:
    secrets = admins(tmp_path)

    async def scenario() -> None:
        store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
        a, b = create_key(store, "alpha")[0], create_key(store, "beta")[0]
        store.close()
        chat = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        async with standin() as (_, burl), gateway([model("m", burl)], **keyed(tmp_path)) as url:
            assert (await call(url, a, chat))[0] == 200
            assert (await call(url, b, chat))[0] == 200
            await asyncio.sleep(0.3)
            _, _, seen = await call(url, secrets["viewer"], method="GET", path="/admin/usage")
            assert [(r["tenant"], r["requests"]) for r in seen["data"]] == [(None, 2)]
            _, _, seen = await call(url, secrets["auditor"], method="GET", path="/admin/usage")
            assert {r["tenant"] for r in seen["data"]} == {"alpha", "beta"}

    uvloop.run(scenario())


def test_every_admin_action_has_its_row_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMHOST_ADMIN_KEY", "bootstrap-secret")
    secrets = admins(tmp_path)

    async def scenario() -> None:
        server = keyed(tmp_path, audit_jsonl=str(tmp_path / "trail.jsonl"))
        async with standin() as (_, burl), gateway([model("m", burl)], **server) as url:
            op = secrets["operator"]
            status, _, made = await call(
                url, op, {"tenant": "acme", "monthly_tokens": 100}, path="/admin/keys"
            )
            assert status == 201
            prefix = made["record"]["prefix"]
            assert (
                await call(
                    url,
                    "bootstrap-secret",
                    {"monthly_tokens": 900},
                    path="/admin/tenants/acme",
                    method="PUT",
                )
            )[0] == 200
            assert (await call(url, op, method="DELETE", path=f"/admin/keys/{prefix}"))[0] == 200
            assert (await call(url, secrets["viewer"], method="GET", path="/admin/keys"))[0] == 403
            await asyncio.sleep(0.3)
            _, _, trail = await call(
                url, secrets["auditor"], method="GET", path="/admin/audit?trail=admin"
            )
            secret = made["key"]
        actions = [(e["action"], e["actor"][:4], e["target"]) for e in trail["data"]]
        op_prefix = secrets["operator"][:15]
        assert ("key_created", "llma", prefix) in actions
        assert ("budget_changed", "llma", "acme") in actions  # the key set the tenant's budget
        assert ("budget_changed", "env", "acme") in actions
        assert ("key_revoked", "llma", prefix) in actions
        assert ("denied", "llma", "GET /admin/keys") in actions
        changed = [e for e in trail["data"] if e["action"] == "budget_changed"]
        assert changed[-1]["before"] == {"monthly_tokens": 100}
        assert changed[-1]["after"] == {"monthly_tokens": 900}
        through_api = [e for e in trail["data"] if e["actor"].startswith(("llma-", "env"))]
        assert through_api and all(e["source"] == "127.0.0.1" for e in through_api)
        assert any(e["actor"] == op_prefix for e in trail["data"])
        everything = (tmp_path / "trail.jsonl").read_text() + json.dumps(trail)
        for value in (*secrets.values(), secret, "bootstrap-secret"):
            assert value not in everything

    uvloop.run(scenario())


def test_authentication_failures_are_summarised_not_one_row_each(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = keyed(tmp_path, auth_failure_window_s=0.3)
        chat = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        async with standin() as (_, burl), gateway([model("m", burl)], **server) as url:
            statuses = await asyncio.gather(
                *(call(url, f"llmh-{i:010x}-{'A' * 43}", chat) for i in range(60))
            )
            assert {s for s, _, _ in statuses} == {401}
            await asyncio.sleep(0.8)
        store = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
        try:
            failures = store.admin_audit(action="auth_failure")
        finally:
            store.close()
        assert sum(e.count for e in failures) == 60
        assert len(failures) <= 3  # one per window and reason, not one per request
        assert failures[0].after == {
            "reason": "unknown API key",
            "since": failures[0].after["since"],
        }

    uvloop.run(scenario())


def llmhost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmhost", *args], capture_output=True, text=True, timeout=60
    )


def test_the_cli_manages_admins_and_reads_both_trails(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = llmhost("admins", "create", "--role", "auditor", "--name", "sec", "--store", store_url)
    assert done.returncode == 0, done.stderr
    prefix = done.stdout.split()[3]
    assert llmhost("admins", "create", "--role", "root", "--store", store_url).returncode == 2
    listed = llmhost("admins", "list", "--store", store_url).stdout
    assert prefix in listed and "auditor" in listed and "llma-" in listed.split("\n")[1]
    assert llmhost("keys", "create", "--tenant", "acme", "--store", store_url).returncode == 0
    assert llmhost("admins", "revoke", prefix, "--store", store_url).returncode == 0
    rows = [
        json.loads(line)
        for line in llmhost("audit", "--jsonl", "--store", store_url).stdout.splitlines()
    ]
    assert [r["action"] for r in rows] == ["role_changed", "key_created", "role_changed"]
    assert all(r["actor"].startswith("cli:") and r["source"] == "cli" for r in rows[1:])
    table = list(
        csv.DictReader(io.StringIO(llmhost("audit", "--csv", "--store", store_url).stdout))
    )
    assert [r["what"] for r in table] == ["role_changed", "key_created", "role_changed"]
    only = llmhost("audit", "--kind", "key_created", "--jsonl", "--store", store_url).stdout
    assert len(only.splitlines()) == 1
    bad = llmhost("audit", "--kind", "nope", "--store", store_url)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
