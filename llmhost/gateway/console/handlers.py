"""The console's pages and JSON endpoints under /ui, each open only to the admin roles that may
call the matching /admin/ route (`roles.PERMISSIONS`): a console page is an admin API call.

Pages are rendered on the server (Jinja2, autoescaped); the small scripts in /ui/static poll the
JSON endpoints for live figures and draw the charts. Every form posts a CSRF token; every
change is written to the admin trail like the admin API writes it. Nothing here is on the
request path: the console only reads what the gateway, the store and the catalog already hold.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from llmhost.config import LOOPBACK, ServerConfig
from llmhost.errors import LlmhostError
from llmhost.gateway.admin import BudgetChange
from llmhost.gateway.console import views
from llmhost.gateway.console.security import clear_cookie, harden, set_cookie
from llmhost.gateway.console.sessions import COOKIE, LOGIN_COOKIE, TTL_S, Session, Sessions
from llmhost.gateway.console.static import Static
from llmhost.gateway.errors import Refusal, StoreUnavailable
from llmhost.gateway.keys import PREFIX_PATTERN, TENANT_PATTERN, KeySpec, create_from_spec
from llmhost.gateway.keys import describe_validation as describe
from llmhost.gateway.roles import AdminPrincipal, allowed, record_action
from llmhost.gateway.routes import Route
from llmhost.gateway.tenancy import Tenancy
from llmhost.plan.types import Plan

Health = Callable[[], dict[str, Any]]
Handler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent
MAX_UPLOAD_BYTES = 16 * 1024 * 1024

# Each console page is the admin route whose permission it needs.
NAV: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("overview", "Overview", ("GET", "/admin/health")),
    ("keys", "Keys and tenants", ("GET", "/admin/keys")),
    ("usage", "Usage and savings", ("GET", "/admin/usage")),
    ("audit", "Audit", ("GET", "/admin/audit")),
    ("plans", "Plans and benchmarks", ("GET", "/admin/health")),
)
CREATE_KEY = ("POST", "/admin/keys")
REVOKE_KEY = ("DELETE", "/admin/keys/{prefix}")
SET_BUDGET = ("PUT", "/admin/tenants/{name}")
LIMIT_FIELDS = ("rpm", "tpm", "max_concurrent", "monthly_tokens")
RECENT_EVERY_S = 5.0  # how often the overview's rates are read from the store


class Console:
    """The web console: login, overview, keys and tenants, usage, audit and plans."""

    def __init__(
        self,
        server: ServerConfig,
        tenancy: Tenancy,
        health: Health,
        routes: Sequence[Route],
        sessions: Sessions | None = None,
    ) -> None:
        self.server = server
        self.tenancy = tenancy
        self.health_view = health
        self.routes = list(routes)
        self.sessions = sessions or Sessions()
        self._recent: tuple[float, dict[str, dict[str, Any]]] = (-math.inf, {})
        self.secure = server.host not in LOOPBACK
        self.static = Static(HERE / "static")
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["number"] = _number

    def add_routes(self, app: web.Application) -> None:
        """Register the console's routes under /ui on `app`."""
        add = app.router.add_route
        add("GET", "/ui", self.index)
        add("GET", "/ui/", self.index)
        add("GET", "/ui/static/{name}", self.static.handle)
        add("GET", "/ui/login", self.login_page)
        add("POST", "/ui/login", self.login)
        add("POST", "/ui/logout", self.logout)
        add("GET", "/ui/overview", self._page(NAV[0][2], self.overview))
        add("GET", "/ui/api/overview", self._api(NAV[0][2], self.overview_json))
        add("GET", "/ui/keys", self._page(NAV[1][2], self.keys))
        add("POST", "/ui/keys", self._form(CREATE_KEY, self.create_key))
        add("POST", "/ui/keys/{prefix}/revoke", self._form(REVOKE_KEY, self.revoke_key))
        add("POST", "/ui/tenants", self._form(SET_BUDGET, self.set_budget))
        add("GET", "/ui/usage", self._page(NAV[2][2], self.usage))
        add("GET", "/ui/api/usage", self._api(NAV[2][2], self.usage_json))
        add("GET", "/ui/usage.csv", self._api(NAV[2][2], self.usage_csv))
        add("GET", "/ui/audit", self._page(NAV[3][2], self.audit))
        add("GET", "/ui/plans", self._page(NAV[4][2], self.plans))
        add("POST", "/ui/plans", self._page(NAV[4][2], self.open_plan))  # CSRF checked inside

    # -- sessions --------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def _guard(
        self,
        permission: tuple[str, str],
        handler: Handler,
        on_anonymous: Callable[[], web.Response],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """`handler` for a logged-in principal whose role holds `permission`."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            session = self._session(request)
            if session is None:
                return harden(on_anonymous())
            if not allowed(session.principal, *permission):
                return harden(self._render(request, session, "denied.html", status=403))
            try:
                return harden(await handler(request, session))
            except StoreUnavailable:
                page = self._render(request, session, "unavailable.html", status=503)
                page.headers["Retry-After"] = str(self.server.retry_after_s)
                return harden(page)

        guarded.__doc__ = handler.__doc__
        return guarded

    def _page(
        self, permission: tuple[str, str], handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A page: anonymous visitors are sent to the login page."""
        return self._guard(permission, handler, lambda: _redirect("/ui/login"))

    def _api(
        self, permission: tuple[str, str], handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A JSON or CSV endpoint of the console's scripts: anonymous callers get 401."""

        def anonymous() -> web.Response:
            return web.json_response({"error": "log in to the console first"}, status=401)

        return self._guard(permission, handler, anonymous)

    def _form(
        self, permission: tuple[str, str], handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A form post: it must carry the session's CSRF token."""

        async def checked(request: web.Request, session: Session) -> web.StreamResponse:
            form = await request.post()
            token = form.get("csrf")
            if not session.csrf_ok(token if isinstance(token, str) else None):
                return web.Response(status=403, text="the form's CSRF token is missing or stale")
            return await handler(request, session)

        checked.__doc__ = handler.__doc__
        return self._page(permission, checked)

    async def index(self, request: web.Request) -> web.StreamResponse:
        """GET /ui: the overview, or the login page."""
        return harden(_redirect("/ui/overview" if self._session(request) else "/ui/login"))

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        """GET /ui/login: the admin-key form, with a fresh CSRF token in a cookie beside it."""
        return harden(self._login_form(request, None))

    def _login_form(self, request: web.Request, error: str | None) -> web.Response:
        token = secrets.token_urlsafe(32)
        page = self._render(
            request, None, "login.html", status=401 if error else 200, csrf=token, error=error
        )
        set_cookie(page, LOGIN_COOKIE, token, self.secure, 600)
        return page

    async def login(self, request: web.Request) -> web.StreamResponse:
        """POST /ui/login with an admin key: a session as that key's principal (its role)."""
        form = await request.post()
        token, key = form.get("csrf"), form.get("key")
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not isinstance(token, str) or not expected or not hmac.compare_digest(token, expected):
            return harden(self._login_form(request, "The form expired; try again."))
        if not isinstance(key, str) or not key.strip():
            return harden(self._login_form(request, "Enter an admin key."))
        admins = self.tenancy.admins
        try:
            if not await admins.enabled():
                return harden(self._login_form(request, "The admin API is off on this gateway."))
            principal = await admins.principal(f"Bearer {key.strip()}")
        except Refusal as refusal:
            self.tenancy.failures.note(request.remote, f"console: {refusal.message}")
            return harden(self._login_form(request, "That key is not an admin key."))
        except StoreUnavailable:
            return harden(self._login_form(request, "The store is unreachable; retry shortly."))
        cookie, _ = self.sessions.open(principal)
        self._record(principal, "console_login", None, request)
        response = _redirect("/ui/overview")
        set_cookie(response, COOKIE, cookie, self.secure, int(TTL_S))
        clear_cookie(response, LOGIN_COOKIE, self.secure)
        return harden(response)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """POST /ui/logout: end the session."""
        session = self._session(request)
        form = await request.post()
        token = form.get("csrf")
        if session is not None and session.csrf_ok(token if isinstance(token, str) else None):
            self.sessions.close(request.cookies.get(COOKIE))
        response = _redirect("/ui/login")
        clear_cookie(response, COOKIE, self.secure)
        return harden(response)

    # -- pages -----------------------------------------------------------------------------

    async def _overview(self) -> dict[str, Any]:
        """The overview's figures; the rates of the last minutes are read from the store at
        most every RECENT_EVERY_S, however many browsers poll."""
        now = time.time()
        if now - self._recent[0] >= RECENT_EVERY_S:
            try:
                figures = await asyncio.to_thread(views.recent, self.tenancy.store, now)
                self._recent = (now, figures)
            except StoreUnavailable:
                pass  # replicas and queues still show; the rates wait for the store
        return views.overview(self.health_view(), self.routes, self._recent[1])

    async def overview(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/overview: every model's replicas by state, queue and in-flight (live)."""
        data = await self._overview()
        return self._render(request, session, "overview.html", data=data)

    async def overview_json(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/api/overview: what the overview script polls."""
        return web.json_response(await self._overview())

    async def keys(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/keys[?tenant=T]: keys (never a secret) and tenants with their budgets."""
        tenant = request.query.get("tenant") or None
        if tenant is not None and not re.fullmatch(TENANT_PATTERN, tenant):
            tenant = None
        store = self.tenancy.store
        records = await asyncio.to_thread(store.keys, tenant)
        tenants = await asyncio.to_thread(store.tenants)
        return self._render(
            request,
            session,
            "keys.html",
            keys=[r.to_dict() for r in records],
            tenants=tenants,
            secret=session.take_secret(),
            can_change=allowed(session.principal, *CREATE_KEY),
            tenant=tenant,
        )

    async def create_key(self, request: web.Request, session: Session) -> web.StreamResponse:
        """POST /ui/keys: a new key; its secret is shown on the next page, once."""
        form = await request.post()
        try:
            spec = KeySpec.model_validate(_key_fields(form))
        except ValidationError as exc:
            session.flash.append(f"No key made: {describe(exc)}")
            return _redirect("/ui/keys")
        except ValueError as exc:
            session.flash.append(f"No key made: {exc}")
            return _redirect("/ui/keys")
        store = self.tenancy.store
        before = await asyncio.to_thread(store.tenant, spec.tenant)
        secret, record = await asyncio.to_thread(create_from_spec, store, spec)
        principal = session.principal
        self._record(principal, "key_created", record.prefix, request, None, record.to_dict())
        budget_before = before.monthly_tokens if before is not None else None
        if spec.monthly_tokens is not None and spec.monthly_tokens != budget_before:
            self._record(
                principal,
                "budget_changed",
                spec.tenant,
                request,
                {"monthly_tokens": budget_before},
                {"monthly_tokens": spec.monthly_tokens},
            )
        session.secret = secret
        session.flash.append(f"Key {record.prefix} made for tenant {record.tenant}.")
        return _redirect("/ui/keys")

    async def revoke_key(self, request: web.Request, session: Session) -> web.StreamResponse:
        """POST /ui/keys/{prefix}/revoke: revoke a key (kept for the audit trail)."""
        prefix = request.match_info["prefix"]
        done = False
        if PREFIX_PATTERN.fullmatch(prefix):
            done = await asyncio.to_thread(self.tenancy.store.revoke, prefix)
        if done:
            self._record(
                session.principal,
                "key_revoked",
                prefix,
                request,
                {"revoked": False},
                {"revoked": True},
            )
            session.flash.append(f"Key {prefix} revoked.")
        else:
            session.flash.append(f"No active key {prefix}.")
        return _redirect("/ui/keys")

    async def set_budget(self, request: web.Request, session: Session) -> web.StreamResponse:
        """POST /ui/tenants: set (or, left empty, clear) a tenant's monthly token budget."""
        form = await request.post()
        name = str(form.get("tenant", "")).strip()
        raw = str(form.get("monthly_tokens", "")).strip()
        if not re.fullmatch(TENANT_PATTERN, name):
            session.flash.append("Budget unchanged: not a tenant name.")
            return _redirect("/ui/keys")
        try:
            change = BudgetChange.model_validate({"monthly_tokens": _whole(raw, "budget")})
        except (ValidationError, ValueError) as exc:
            text = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            session.flash.append(f"Budget unchanged: {text}")
            return _redirect("/ui/keys")
        store = self.tenancy.store
        before = await asyncio.to_thread(store.tenant, name)
        await asyncio.to_thread(store.set_tenant, name, change.monthly_tokens, False)
        previous = before.monthly_tokens if before is not None else None
        self._record(
            session.principal,
            "budget_changed",
            name,
            request,
            {"monthly_tokens": previous},
            {"monthly_tokens": change.monthly_tokens},
        )
        shown = f"{change.monthly_tokens:,} tokens a month" if change.monthly_tokens else "none"
        session.flash.append(f"Budget of {name}: {shown}.")
        return _redirect("/ui/keys")

    def _usage_view(self, request: web.Request, session: Session) -> Awaitable[views.UsageView]:
        period = request.query.get("period", "month")
        period = period if period in views.PERIODS else "month"
        hourly = _hourly(request.query.get("hourly_usd", ""))
        viewer = session.principal.role == "viewer"
        return asyncio.to_thread(views.usage, self.tenancy.store, period, hourly, viewer)

    async def usage(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/usage[?period=day|month|all&hourly_usd=X]: tokens per tenant and model, and
        the same tokens priced at the catalog's hosted APIs beside the deployment's cost."""
        view = await self._usage_view(request, session)
        hourly = request.query.get("hourly_usd", "")
        return self._render(request, session, "usage.html", view=view, hourly=hourly)

    async def usage_json(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/api/usage: the usage page's figures, for its charts."""
        view = await self._usage_view(request, session)
        return web.json_response(view.to_dict())

    async def usage_csv(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/usage.csv: the usage table as CSV."""
        view = await self._usage_view(request, session)
        return web.Response(
            text=views.usage_csv(view),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="usage-{view.period}.csv"'},
        )

    async def audit(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/audit[?trail=&tenant=&key=&model=&status=&since=&until=]: both trails."""
        chosen, errors = _audit_filter(request.query)
        rows = await asyncio.to_thread(views.audit, self.tenancy.store, chosen)
        return self._render(
            request,
            session,
            "audit.html",
            rows=rows,
            query=request.query,
            errors=errors,
            models=[r.name for r in self.routes],
        )

    async def plans(self, request: web.Request, session: Session) -> web.StreamResponse:
        """GET /ui/plans: open a plan file or a bench result."""
        return self._render(request, session, "plans.html", plan=None, bench=None, error=None)

    async def open_plan(self, request: web.Request, session: Session) -> web.StreamResponse:
        """POST /ui/plans with a file: a plan (`llmhost plan --json`, read by `Plan.from_json`
        like `llmhost render` reads it: candidates, recommendation, a cost chart) or a bench
        result (`llmhost bench --out`'s results.json: the sweep table and its charts).

        The form is read as a stream (a bench result can be larger than the gateway's request
        body limit, which a form read in one piece would meet), up to MAX_UPLOAD_BYTES."""
        try:
            fields = await _multipart(request, MAX_UPLOAD_BYTES)
        except ValueError as exc:  # nothing was read into a change: a page saying why
            return self._render(
                request, session, "plans.html", 400, plan=None, bench=None, error=str(exc)
            )
        token = fields.get("csrf")
        if not session.csrf_ok(token[1].decode(errors="replace") if token else None):
            return web.Response(status=403, text="the form's CSRF token is missing or stale")
        upload = fields.get("plan")
        plan: Plan | None = None
        bench: views.BenchView | None = None
        error = None
        if upload is None or not upload[1]:
            error = "Choose a plan or bench result file."
        else:
            name, raw = upload
            try:
                data = json.loads(raw.decode("utf-8"))
                if isinstance(data, dict) and "candidates" in data:
                    plan = Plan.from_dict(data)
                else:
                    bench = views.bench(data, name)
            except LlmhostError as exc:
                error = f"{name}: {exc}" if not str(exc).startswith(name) else str(exc)
            except (ValueError, TypeError, KeyError) as exc:
                error = f"{name} is not a plan file: {type(exc).__name__} {exc}"
        chart = None
        if plan is not None:
            chart = json.dumps(
                [
                    {
                        "label": f"{c.gpu} x{c.gpu_count} {c.quantization}",
                        "value": c.monthly_cost_usd,
                    }
                    for c in plan.candidates
                    if c.fits and c.monthly_cost_usd is not None
                ][:40]
            )
        if bench is not None:
            chart = json.dumps(bench.levels)
        status = 400 if error else 200
        return self._render(
            request,
            session,
            "plans.html",
            status=status,
            plan=plan,
            bench=bench,
            error=error,
            chart=chart,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _render(
        self,
        request: web.Request,
        session: Session | None,
        template: str,
        status: int = 200,
        **context: Any,
    ) -> web.Response:
        nav = []
        if session is not None:
            nav = [(slug, title) for slug, title, perm in NAV if allowed(session.principal, *perm)]
        flash = list(session.flash) if session is not None else []
        if session is not None:
            session.flash.clear()
        html = self.templates.get_template(template).render(
            session=session,
            principal=session.principal if session else None,
            csrf=session.csrf if session else context.pop("csrf", ""),
            nav=nav,
            path=request.path,
            flash=flash,
            **context,
        )
        return web.Response(text=html, content_type="text/html", status=status)

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


async def _multipart(request: web.Request, limit: int) -> dict[str, tuple[str, bytes]]:
    """A multipart form's fields, by name: (file name or "", content), at most `limit` bytes
    in all; a ValueError when it is not a multipart form or is larger."""
    if not request.content_type.startswith("multipart/"):
        raise ValueError("expected a multipart form")
    reader = await request.multipart()
    fields: dict[str, tuple[str, bytes]] = {}
    total = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise ValueError("unexpected nested multipart content")
        chunks = []
        while chunk := await part.read_chunk(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise ValueError(f"the upload is over {limit // (1024 * 1024)} MiB")
            chunks.append(chunk)
        fields[part.name] = (part.filename or "", b"".join(chunks))
    return fields


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _whole(raw: str, what: str) -> int | None:
    """A form's whole number (commas and underscores allowed), None when left empty."""
    text = raw.replace(",", "").replace("_", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{what} must be a whole number, not '{raw}'")
    return int(text)


def _key_fields(form: Any) -> dict[str, Any]:
    """The key form's fields as a KeySpec's input (empty fields left out)."""
    fields: dict[str, Any] = {"tenant": str(form.get("tenant", "")).strip()}
    name = str(form.get("name", "")).strip()
    if name:
        fields["name"] = name
    for limit in LIMIT_FIELDS:
        value = _whole(str(form.get(limit, "")), limit.replace("_", " "))
        if value is not None:
            fields[limit] = value
    models = [m.strip() for m in str(form.get("models", "")).split(",") if m.strip()]
    if models:
        fields["models"] = models
    return fields


def _hourly(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _moment(raw: str) -> float | None:
    """A datetime-local field (UTC) as Unix time."""
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _audit_filter(query: Any) -> tuple[views.AuditFilter, list[str]]:
    """The audit page's filter from its query string, and what of it was not understood."""
    errors = []

    def text(name: str, pattern: str | re.Pattern[str]) -> str | None:
        value = str(query.get(name, "")).strip()
        if not value:
            return None
        if re.fullmatch(pattern, value):
            return value
        errors.append(f"'{name}' ignored: not a valid value")
        return None

    trail = text("trail", "request|admin")
    status_text = text("status", r"[1-5]\d\d")
    since = _moment(str(query.get("since", ""))) if query.get("since") else None
    until = _moment(str(query.get("until", ""))) if query.get("until") else None
    for name, given, value in (("since", "since", since), ("until", "until", until)):
        if query.get(given) and value is None:
            errors.append(f"'{name}' ignored: not a date and time")
    return (
        views.AuditFilter(
            trail=trail,
            tenant=text("tenant", TENANT_PATTERN),
            model=text("model", r"[A-Za-z0-9._:/-]{1,200}"),
            status=int(status_text) if status_text else None,
            key=text("key", PREFIX_PATTERN),
            since=since or 0.0,
            until=until,
        ),
        errors,
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.6f}" if abs(value) < 0.01 else f"{value:,.4f}"
