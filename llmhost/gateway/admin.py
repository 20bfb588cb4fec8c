"""The admin HTTP API under /admin/: keys and usage, guarded by the admin key.

The admin key comes from the environment variable `server.admin_key_env` (LLMHOST_ADMIN_KEY);
without it the admin API is off. Bodies are validated by the same `KeySpec` the CLI uses; every
error, bad input and store outage alike, is a JSON error in one shape, never a 500. Responses
never include a key's hash; a new key's secret is in the creation response only.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from llmhost.gateway.auth import bearer_matches
from llmhost.gateway.errors import Refusal, StoreUnavailable, error_response, json_response
from llmhost.gateway.keys import PREFIX_PATTERN, TENANT_PATTERN, KeySpec, create_from_spec
from llmhost.gateway.keys import describe_validation as describe
from llmhost.gateway.tenancy import Tenancy

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.Response]]


class AdminApi:
    """Handlers for /admin/ routes."""

    def __init__(self, tenancy: Tenancy, retry_after_s: int = 2) -> None:
        self.tenancy = tenancy
        self.retry_after_s = retry_after_s

    def add_routes(self, app: web.Application) -> None:
        """Register the admin routes on `app`."""
        app.router.add_get("/admin/keys", self._guarded(self.list_keys))
        app.router.add_post("/admin/keys", self._guarded(self.create))
        app.router.add_get("/admin/keys/{prefix}", self._guarded(self.show))
        app.router.add_delete("/admin/keys/{prefix}", self._guarded(self.revoke))
        app.router.add_get("/admin/usage", self._guarded(self.usage))

    def _guarded(self, handler: Handler) -> Handler:
        """`handler` behind the admin key, with refusals and store outages as JSON errors."""

        async def guarded(request: web.Request) -> web.Response:
            expected = self.tenancy.admin_key
            if expected is None:
                return error_response(
                    "admin_only", "the admin API is off: set LLMHOST_ADMIN_KEY to turn it on"
                )
            if not bearer_matches(request, expected):
                return error_response("invalid_api_key", "the admin API needs the admin key")
            try:
                return await handler(request)
            except Refusal as refusal:
                return refusal.response()
            except StoreUnavailable:
                return error_response(
                    "store_unavailable",
                    "the store is unreachable right now; retry shortly",
                    headers={"Retry-After": str(self.retry_after_s)},
                )

        guarded.__doc__ = handler.__doc__
        return guarded

    async def _store(self, call: Callable[[], T]) -> T:
        return await asyncio.to_thread(call)

    async def list_keys(self, request: web.Request) -> web.Response:
        """GET /admin/keys[?tenant=T]."""
        tenant = _tenant(request)
        records = await self._store(lambda: self.tenancy.store.keys(tenant))
        return json_response({"data": [r.to_dict() for r in records]})

    async def create(self, request: web.Request) -> web.Response:
        """POST /admin/keys with a KeySpec: {tenant, rpm?, tpm?, max_concurrent?, ...}."""
        body = await request.read()
        try:
            spec = KeySpec.model_validate_json(body)
        except ValidationError as exc:
            code = "invalid_json" if _is_json_error(exc) else "invalid_value"
            param = ".".join(str(p) for p in exc.errors()[0]["loc"]) or None
            raise Refusal(code, describe(exc), param) from None
        secret, record = await self._store(lambda: create_from_spec(self.tenancy.store, spec))
        return json_response({"key": secret, "record": record.to_dict()}, status=201)

    async def show(self, request: web.Request) -> web.Response:
        """GET /admin/keys/{prefix}."""
        prefix = _prefix(request)
        record = await self._store(lambda: self.tenancy.store.key(prefix)) if prefix else None
        if record is None:
            return error_response("not_found", "no such key")
        return json_response(record.to_dict())

    async def revoke(self, request: web.Request) -> web.Response:
        """DELETE /admin/keys/{prefix}: revoke (kept for the audit trail)."""
        prefix = _prefix(request)
        done = await self._store(lambda: self.tenancy.store.revoke(prefix)) if prefix else False
        if not done:
            return error_response("not_found", "no active key with that prefix")
        return json_response({"revoked": prefix})

    async def usage(self, request: web.Request) -> web.Response:
        """GET /admin/usage[?tenant=T&since=UNIX_TIME]."""
        tenant = _tenant(request)
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            raise Refusal("invalid_value", "'since' must be a Unix time", "since")
        rows = await self._store(lambda: self.tenancy.store.usage(tenant, since))
        return json_response({"data": [asdict(r) for r in rows]})


def _tenant(request: web.Request) -> str | None:
    tenant = request.query.get("tenant")
    if tenant is not None and not re.fullmatch(TENANT_PATTERN, tenant):
        raise Refusal("invalid_value", "'tenant' is not a tenant name", "tenant")
    return tenant


def _prefix(request: web.Request) -> str | None:
    prefix = request.match_info["prefix"]
    return prefix if PREFIX_PATTERN.fullmatch(prefix) else None


def _is_json_error(exc: ValidationError) -> bool:
    errors: list[Any] = exc.errors()
    return bool(errors) and errors[0]["type"] in ("json_invalid", "json_type")
