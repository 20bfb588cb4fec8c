"""The admin HTTP API under /admin/: keys and usage, guarded by the admin key.

The admin key comes from the environment variable `server.admin_key_env` (LLMHOST_ADMIN_KEY);
without it the admin API is off. Responses never include a key's hash; a new key's secret is in
the creation response only.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import asdict

import orjson
from aiohttp import web

from llmhost.errors import UsageError
from llmhost.gateway.errors import error_response, json_response
from llmhost.gateway.keys import create_key
from llmhost.gateway.tenancy import Tenancy

CREATE_FIELDS = {"tenant", "name", "rpm", "tpm", "max_concurrent", "monthly_tokens", "models",
                 "expires_at"}  # fmt: skip


class AdminApi:
    """Handlers for /admin/ routes."""

    def __init__(self, tenancy: Tenancy) -> None:
        self.tenancy = tenancy

    def add_routes(self, app: web.Application) -> None:
        """Register the admin routes on `app`."""
        app.router.add_get("/admin/keys", self.list_keys)
        app.router.add_post("/admin/keys", self.create)
        app.router.add_get("/admin/keys/{prefix}", self.show)
        app.router.add_delete("/admin/keys/{prefix}", self.revoke)
        app.router.add_get("/admin/usage", self.usage)

    def _denied(self, request: web.Request) -> web.Response | None:
        expected = self.tenancy.admin_key
        if expected is None:
            return error_response(
                "admin_only", "the admin API is off: set LLMHOST_ADMIN_KEY to turn it on"
            )
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
            return error_response("invalid_api_key", "the admin API needs the admin key")
        return None

    async def list_keys(self, request: web.Request) -> web.Response:
        """GET /admin/keys[?tenant=T]."""
        if (denied := self._denied(request)) is not None:
            return denied
        records = await asyncio.to_thread(self.tenancy.store.keys, request.query.get("tenant"))
        return json_response({"data": [r.to_dict() for r in records]})

    async def create(self, request: web.Request) -> web.Response:
        """POST /admin/keys with {tenant, rpm?, tpm?, max_concurrent?, monthly_tokens?, ...}."""
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return error_response("invalid_json", "the body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("tenant"), str):
            return error_response("invalid_value", "'tenant' is required", "tenant")
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            return error_response("invalid_value", f"unknown fields: {', '.join(sorted(unknown))}")
        try:
            secret, record = await asyncio.to_thread(lambda: create_key(self.tenancy.store, **body))
        except (UsageError, TypeError) as exc:
            return error_response("invalid_value", str(exc))
        return json_response({"key": secret, "record": record.to_dict()}, status=201)

    async def show(self, request: web.Request) -> web.Response:
        """GET /admin/keys/{prefix}."""
        if (denied := self._denied(request)) is not None:
            return denied
        record = await asyncio.to_thread(self.tenancy.store.key, request.match_info["prefix"])
        if record is None:
            return error_response("not_found", "no such key")
        return json_response(record.to_dict())

    async def revoke(self, request: web.Request) -> web.Response:
        """DELETE /admin/keys/{prefix}: revoke (kept for the audit trail)."""
        if (denied := self._denied(request)) is not None:
            return denied
        done = await asyncio.to_thread(self.tenancy.store.revoke, request.match_info["prefix"])
        if not done:
            return error_response("not_found", "no active key with that prefix")
        return json_response({"revoked": request.match_info["prefix"]})

    async def usage(self, request: web.Request) -> web.Response:
        """GET /admin/usage[?tenant=T&since=UNIX_TIME]."""
        if (denied := self._denied(request)) is not None:
            return denied
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return error_response("invalid_value", "'since' must be a Unix time", "since")
        rows = await asyncio.to_thread(self.tenancy.store.usage, request.query.get("tenant"), since)
        return json_response({"data": [asdict(r) for r in rows]})
