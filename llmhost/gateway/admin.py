"""The admin HTTP API under /admin/: keys, tenants' budgets, usage and the audit trails, each
route open only to the roles `roles.PERMISSIONS` names.

Principals: the bootstrap key in `server.admin_key_env` (LLMHOST_ADMIN_KEY), admin keys made by
`llmhost admins create`, or OIDC tokens whose groups map to a role; with none of them the admin
API is off. Bodies are validated by the same `KeySpec` the CLI uses; every error, bad input and
store outage alike, is a JSON error in one shape, never a 500. Every change (key created or
revoked, budget changed) and every refused admin call is written to the admin trail: who, what,
when, from where, before and after, never a secret. Responses never include a key's hash; a new
key's secret is in the creation response only.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmhost.gateway.errors import Refusal, StoreUnavailable, error_response, json_response
from llmhost.gateway.keys import PREFIX_PATTERN, TENANT_PATTERN, KeySpec, create_from_spec
from llmhost.gateway.keys import describe_validation as describe
from llmhost.gateway.roles import PERMISSIONS, AdminPrincipal, allowed, record_action
from llmhost.gateway.store.records import AdminEvent
from llmhost.gateway.tenancy import Tenancy

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request, AdminPrincipal], Awaitable[web.Response]]
Health = Callable[[], dict[str, Any]]


class BudgetChange(BaseModel):
    """PUT /admin/tenants/{name}: the tenant's monthly budget (null: none)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    monthly_tokens: int | None = Field(..., ge=1, le=10**15)


class AdminApi:
    """Handlers for /admin/ routes."""

    def __init__(
        self, tenancy: Tenancy, retry_after_s: int = 2, health: Health | None = None
    ) -> None:
        self.tenancy = tenancy
        self.retry_after_s = retry_after_s
        self.health_view = health or (lambda: {})

    def add_routes(self, app: web.Application) -> None:
        """Register every route in `PERMISSIONS` on `app`."""
        handlers: dict[tuple[str, str], Handler] = {
            ("GET", "/admin/keys"): self.list_keys,
            ("POST", "/admin/keys"): self.create,
            ("GET", "/admin/keys/{prefix}"): self.show,
            ("DELETE", "/admin/keys/{prefix}"): self.revoke,
            ("PUT", "/admin/tenants/{name}"): self.set_budget,
            ("GET", "/admin/usage"): self.usage,
            ("GET", "/admin/audit"): self.audit,
            ("GET", "/admin/admins"): self.list_admins,
            ("GET", "/admin/health"): self.health,
        }
        assert set(handlers) == set(PERMISSIONS), "every admin route has its permissions"
        for (method, path), handler in handlers.items():
            app.router.add_route(method, path, self._guarded(method, path, handler))

    def _guarded(
        self, method: str, path: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """`handler` behind the principal's role, with refusals and store outages as JSON."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            admins = self.tenancy.admins
            try:
                if not await admins.enabled():
                    return error_response(
                        "admin_only", "the admin API is off: set LLMHOST_ADMIN_KEY to turn it on"
                    )
                try:
                    principal = await admins.principal(request.headers.get("Authorization", ""))
                except Refusal as refusal:
                    self.tenancy.failures.note(request.remote, f"admin: {refusal.message}")
                    raise
                if not allowed(principal, method, path):
                    self._record(principal, "denied", f"{method} {path}", request)
                    raise Refusal("admin_only", f"role '{principal.role}' may not {method} {path}")
                return await handler(request, principal)
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

    def _record(
        self,
        principal: AdminPrincipal,
        action: str,
        target: str | None,
        request: web.Request,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """Queue an admin-trail entry for this call."""
        record_action(self.tenancy.audit, principal, action, target, request.remote, before, after)

    async def _store(self, call: Callable[[], T]) -> T:
        return await asyncio.to_thread(call)

    async def list_keys(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """GET /admin/keys[?tenant=T]."""
        tenant = _tenant(request)
        records = await self._store(lambda: self.tenancy.store.keys(tenant))
        return json_response({"data": [r.to_dict() for r in records]})

    async def create(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """POST /admin/keys with a KeySpec: {tenant, rpm?, tpm?, max_concurrent?, ...}."""
        spec = _body(KeySpec, await request.read())
        store = self.tenancy.store
        before = await self._store(lambda: store.tenant(spec.tenant))
        secret, record = await self._store(lambda: create_from_spec(store, spec))
        self._record(principal, "key_created", record.prefix, request, None, record.to_dict())
        budget_before = before.monthly_tokens if before is not None else None
        if spec.monthly_tokens is not None and spec.monthly_tokens != budget_before:
            self._budget_event(principal, request, spec.tenant, budget_before, spec.monthly_tokens)
        return json_response({"key": secret, "record": record.to_dict()}, status=201)

    async def show(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """GET /admin/keys/{prefix}."""
        prefix = _prefix(request)
        record = await self._store(lambda: self.tenancy.store.key(prefix)) if prefix else None
        if record is None:
            return error_response("not_found", "no such key")
        return json_response(record.to_dict())

    async def revoke(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """DELETE /admin/keys/{prefix}: revoke (kept for the audit trail)."""
        prefix = _prefix(request)
        done = await self._store(lambda: self.tenancy.store.revoke(prefix)) if prefix else False
        if not done:
            return error_response("not_found", "no active key with that prefix")
        self._record(
            principal, "key_revoked", prefix, request, {"revoked": False}, {"revoked": True}
        )
        return json_response({"revoked": prefix})

    async def set_budget(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """PUT /admin/tenants/{name} with {monthly_tokens}: set (or clear) a tenant's budget."""
        name = request.match_info["name"]
        if not re.fullmatch(TENANT_PATTERN, name):
            raise Refusal("invalid_value", "not a tenant name", "name")
        change = _body(BudgetChange, await request.read())
        store = self.tenancy.store
        before = await self._store(lambda: store.tenant(name))
        await self._store(lambda: store.set_tenant(name, change.monthly_tokens, False))
        previous = before.monthly_tokens if before is not None else None
        self._budget_event(principal, request, name, previous, change.monthly_tokens)
        return json_response({"tenant": name, "monthly_tokens": change.monthly_tokens})

    def _budget_event(
        self,
        principal: AdminPrincipal,
        request: web.Request,
        tenant: str,
        before: int | None,
        after: int | None,
    ) -> None:
        self._record(
            principal,
            "budget_changed",
            tenant,
            request,
            {"monthly_tokens": before},
            {"monthly_tokens": after},
        )

    async def usage(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """GET /admin/usage[?tenant=T&since=UNIX_TIME]: rows per tenant and model, and the
        requests refused before naming a model; viewers get totals per model only."""
        tenant = _tenant(request)
        since = _since(request)
        every = await self._store(lambda: self.tenancy.store.usage(tenant, since))
        # Requests refused before they named a model count apart, as `llmhost usage` shows them.
        data = [asdict(r) for r in every if r.model]
        unrouted = sum(r.requests for r in every if not r.model)
        if principal.role == "viewer":
            data = _totals(data)
        return json_response({"data": data, "unrouted_requests": unrouted})

    async def audit(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """GET /admin/audit[?trail=request|admin&since=&tenant=&action=]: both trails."""
        since, tenant = _since(request), _tenant(request)
        trail = request.query.get("trail")
        action = request.query.get("action")
        if trail not in (None, "request", "admin"):
            raise Refusal("invalid_value", "'trail' is request or admin", "trail")
        store = self.tenancy.store
        data: list[dict[str, Any]] = []
        if trail in (None, "request") and action is None:
            records = await self._store(lambda: store.audit(since))
            data += [
                {"trail": "request", **asdict(r)}
                for r in records
                if tenant is None or r.tenant == tenant
            ]
        if trail in (None, "admin"):
            events: list[AdminEvent] = await self._store(
                lambda: store.admin_audit(since, action, tenant)
            )
            data += [{"trail": "admin", **asdict(e)} for e in events]
        data.sort(key=lambda row: row["ts"])
        return json_response({"data": data})

    async def list_admins(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """GET /admin/admins: admin principals by prefix and role (never a secret)."""
        records = await self._store(self.tenancy.store.admins)
        return json_response({"data": [r.to_dict() for r in records]})

    async def health(self, request: web.Request, principal: AdminPrincipal) -> web.Response:
        """GET /admin/health: replicas by model and state, queue depth."""
        return json_response(self.health_view())


def _body(model: type[M], raw: bytes) -> M:
    """A JSON body as `model`, or a Refusal (400) naming the field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors: list[Any] = exc.errors()
        code = "invalid_json" if errors[0]["type"] in ("json_invalid", "json_type") else None
        param = ".".join(str(p) for p in errors[0]["loc"]) or None
        raise Refusal(code or "invalid_value", describe(exc), param) from None


def _totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Usage rows summed over tenants: what a viewer may see."""
    by_model: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = by_model.setdefault(
            row["model"],
            {
                "tenant": None,
                "model": row["model"],
                "requests": 0,
                "errors": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "first_ts": row["first_ts"],
            },
        )
        for field in ("requests", "errors", "prompt_tokens", "completion_tokens"):
            total[field] += row[field]
        total["first_ts"] = min(total["first_ts"], row["first_ts"])
    return list(by_model.values())


def _since(request: web.Request) -> float:
    try:
        since = float(request.query.get("since", "0"))
    except ValueError:
        since = math.nan
    if not math.isfinite(since):
        raise Refusal("invalid_value", "'since' must be a Unix time", "since")
    return since


def _tenant(request: web.Request) -> str | None:
    tenant = request.query.get("tenant")
    if tenant is not None and not re.fullmatch(TENANT_PATTERN, tenant):
        raise Refusal("invalid_value", "'tenant' is not a tenant name", "tenant")
    return tenant


def _prefix(request: web.Request) -> str | None:
    prefix = request.match_info["prefix"]
    return prefix if PREFIX_PATTERN.fullmatch(prefix) else None
