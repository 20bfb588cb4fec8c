"""The gateway's HTTP surface: OpenAI-compatible endpoints, health, readiness and metrics.

The request path reads the body once, parses it once (orjson) for the few fields routing needs,
re-serialises only when it must change something (an alias, or asking the engine for stream
usage), and hands the bytes to `proxy.forward`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from math import ceil

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from llmhost.config import ServerConfig
from llmhost.gateway.admin import AdminApi
from llmhost.gateway.audit import prompt_sha256
from llmhost.gateway.auth import AuthError
from llmhost.gateway.errors import error_response, json_response
from llmhost.gateway.limits import Limits
from llmhost.gateway.metrics import GatewayMetrics
from llmhost.gateway.proxy import CLIENT_CLOSED, Exchange, forward
from llmhost.gateway.router.prefix import prefix_key
from llmhost.gateway.routes import Route
from llmhost.gateway.store import AuditRecord, KeyRecord
from llmhost.gateway.tenancy import Tenancy
from llmhost.gateway.upstream import UpstreamPool

GENERATE_PATHS = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
}
POSITIVE_INTS = ("max_tokens", "max_completion_tokens", "n")


def _allowed(key: KeyRecord, route: Route) -> bool:
    return key.models is None or route.name in key.models


def _max_tokens(payload: Mapping[str, object], default: int) -> int:
    for name in ("max_tokens", "max_completion_tokens"):
        value = payload.get(name)
        if type(value) is int:
            return value
    return default


def invalid_field(payload: Mapping[str, object], required: str) -> tuple[str, str] | None:
    """The first field that is missing or of the wrong type, with a message; else None."""
    value = payload.get(required)
    if required == "messages":
        if not isinstance(value, list) or not value:
            return required, "'messages' must be a non-empty array"
    elif not isinstance(value, str | list):
        return required, f"'{required}' is required: a string or an array"
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return "stream", "'stream' must be true or false"
    for name in POSITIVE_INTS:
        number = payload.get(name)
        if number is not None and (type(number) is not int or number < 1):
            return name, f"'{name}' must be a positive integer"
    return None


class Gateway:
    """Routes requests for the configured models to their replicas."""

    def __init__(
        self,
        server: ServerConfig,
        routes: Sequence[Route],
        tiers: Mapping[str, Sequence[str]],
        metrics: GatewayMetrics,
        pool: UpstreamPool,
        tenancy: Tenancy,
    ) -> None:
        self.server = server
        self.routes = list(routes)
        self.tiers = dict(tiers)
        self.by_name: dict[str, Route] = {}
        for route in self.routes:
            for name in (route.name, *route.config.aliases):
                self.by_name[name] = route
        self.gateway_metrics = metrics
        self.pool = pool
        self.tenancy = tenancy
        self.created = int(time.time())

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=self.server.max_body_bytes)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)
        AdminApi(self.tenancy).add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        self._known = {
            r.resource.canonical: r.method  # type: ignore[union-attr]
            for r in app.router.routes()
            if r.method != "*" and r.method != "HEAD"
        }
        return app

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions."""
        return await self._generate(request, "/v1/chat/completions")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/completions."""
        return await self._generate(request, "/v1/completions")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/embeddings (the engine answers if it serves embeddings)."""
        return await self._generate(request, "/v1/embeddings")

    async def _generate(self, request: web.Request, path: str) -> web.StreamResponse:
        started = time.perf_counter()
        tenancy = self.tenancy
        key: KeyRecord | None = None
        if tenancy.auth is not None:
            try:
                key = await tenancy.auth.authenticate(request.headers.get("Authorization"))
            except AuthError as exc:
                return self._refuse(started, None, "", "invalid_api_key", str(exc))
        length = request.content_length
        if length is not None and length > self.server.max_body_bytes:
            return self._refuse(started, key, "", "request_too_large", self._too_large_message())
        try:
            async with asyncio.timeout(self.server.body_read_timeout_s):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(started, key, "", "request_too_large", self._too_large_message())
        except TimeoutError:
            return self._refuse(
                started, key, "", "request_timeout", "the body did not arrive in time"
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._refuse(
                started, key, "", "invalid_json", f"the body is not valid JSON: {exc}"
            )
        if not isinstance(payload, dict):
            return self._refuse(started, key, "", "invalid_json", "the body must be a JSON object")
        model = payload.get("model")
        if not isinstance(model, str):
            return self._refuse(started, key, "", "invalid_value", "'model' is required: a string",
                                "model")  # fmt: skip
        route = self._choose(model, request.headers.get("x-llmhost-tier"))
        if route is None:
            served = ", ".join(sorted(self._names_for(key)))
            return self._refuse(started, key, model[:200], "model_not_found",
                                f"model '{model[:200]}' is not served here; served: {served}",
                                "model")  # fmt: skip
        if key is not None and not _allowed(key, route):
            return self._refuse(started, key, route.name, "model_not_allowed",
                                f"this API key may not use model '{model}'", "model")  # fmt: skip
        problem = invalid_field(payload, GENERATE_PATHS[path])
        if problem is not None:
            return self._refuse(started, key, route.name, "invalid_value", problem[1], problem[0])
        limits = None
        reserved = 0
        request_id = ""
        if key is not None:
            reserved = len(body) // 4 + (
                0 if path == "/v1/embeddings" else _max_tokens(payload, tenancy.default_max_tokens)
            )
            limits = Limits(key.prefix, key.tenant, key.rpm, key.tpm, key.max_concurrent,
                            key.monthly_tokens)  # fmt: skip
            request_id = uuid.uuid4().hex  # unique across gateways (Redis concurrency leases)
            decision = await tenancy.counters.admit(limits, reserved, request_id)
            if not decision.allowed:
                code = "insufficient_quota" if decision.kind == "budget" else "rate_limit_exceeded"
                headers = {**decision.headers, "Retry-After": str(ceil(decision.retry_after_s))}
                return self._refuse(started, key, route.name, code, decision.message,
                                    headers=headers)  # fmt: skip
        stream = payload.get("stream") is True and path != "/v1/embeddings"
        changed = model != route.upstream_model
        if changed:
            payload["model"] = route.upstream_model
        strip_usage = False
        if stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                base = options if isinstance(options, dict) else {}
                payload["stream_options"] = {**base, "include_usage": True}
                strip_usage = changed = True
        prompt_hash = prompt_sha256(payload)
        if changed:
            body = orjson.dumps(payload)
        ex = Exchange(started=started, stream=stream, strip_usage=strip_usage)
        if route.keyed:
            ex.key = prefix_key(payload, route.config.prefix_chars)
        metrics = route.metrics
        metrics.inflight.inc()
        try:
            return await forward(
                request, self.pool, route, path, body, ex,
                self.server.first_byte_timeout_s, self.server.total_timeout_s,
                self.server.retry_after_s,
            )  # fmt: skip
        except asyncio.CancelledError:
            ex.status = CLIENT_CLOSED
            raise
        finally:
            seconds = time.perf_counter() - started
            metrics.inflight.dec()
            metrics.finished(ex.status, seconds, ex.prompt_tokens, ex.completion_tokens)
            if ex.ttft is not None:
                metrics.ttft.observe(ex.ttft)
            used = ex.prompt_tokens + ex.completion_tokens
            if limits is not None:
                tenancy.later(tenancy.counters.finish(limits, reserved, used, request_id))
            self._audit(started, key, route.name, ex.status, ex, prompt_hash)

    def _refuse(
        self,
        started: float,
        key: KeyRecord | None,
        model: str,
        code: str,
        message: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """An error answer that is audited like any other request."""
        response = error_response(code, message, param, headers)
        self._audit(started, key, model, response.status)
        return response

    def _audit(
        self,
        started: float,
        key: KeyRecord | None,
        model: str,
        status: int,
        ex: Exchange | None = None,
        prompt_hash: str | None = None,
    ) -> None:
        """Queue the request's audit record (counts and timings, never content)."""
        self.tenancy.audit.record(AuditRecord(
            ts=time.time(), key_prefix=key.prefix if key else None,
            tenant=key.tenant if key else None, model=model,
            replica=ex.replica.id if ex and ex.replica else None, status=status,
            prompt_tokens=ex.prompt_tokens if ex else 0,
            completion_tokens=ex.completion_tokens if ex else 0,
            ttft_ms=ex.ttft * 1000 if ex and ex.ttft is not None else None,
            duration_ms=(time.perf_counter() - started) * 1000, prompt_sha256=prompt_hash,
        ))  # fmt: skip

    def _choose(self, model: str, tier: str | None) -> Route | None:
        """The route for a request: the tier's (header, else a tier named as the model) or the
        model's chain (itself, then its fallbacks), first one that can serve; None if unknown."""
        if tier is not None and tier in self.tiers:
            chain = [self.by_name[name] for name in self.tiers[tier]]
        elif model in self.tiers:
            chain = [self.by_name[name] for name in self.tiers[model]]
        elif model in self.by_name:
            first = self.by_name[model]
            chain = [first, *(self.by_name[name] for name in first.config.fallback)]
        else:
            return None
        return next((route for route in chain if route.servable()), chain[0])

    def _names_for(self, key: KeyRecord | None) -> list[str]:
        """Model names and aliases this caller may use."""
        names = [
            name for name, route in self.by_name.items() if key is None or _allowed(key, route)
        ]
        return names + list(self.tiers)

    def _too_large_message(self) -> str:
        return f"the body is over the {self.server.max_body_bytes}-byte limit"

    async def models(self, request: web.Request) -> web.Response:
        """GET /v1/models: the models this caller may use, with aliases and ready replicas."""
        key: KeyRecord | None = None
        if self.tenancy.auth is not None:
            try:
                key = await self.tenancy.auth.authenticate(request.headers.get("Authorization"))
            except AuthError as exc:
                return error_response("invalid_api_key", str(exc))
        data = [
            {
                "id": route.name,
                "object": "model",
                "created": self.created,
                "owned_by": "llmhost",
                "aliases": list(route.config.aliases),
                "engine": route.config.engine,
                "ready_replicas": len(route.replica_set.ready()),
            }
            for route in self.routes
            if key is None or _allowed(key, route)
        ]
        return json_response({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        """GET /health: the gateway process is alive."""
        return json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """GET /ready: 200 when every model can serve (a ready replica, or it is at zero and
        wakes on demand), else 503 naming those that cannot."""
        counts = {route.name: len(route.replica_set.ready()) for route in self.routes}
        waiting = sorted(r.name for r in self.routes if not counts[r.name] and r.wake is None)
        if waiting:
            return json_response(
                {"status": "not ready", "models": counts, "waiting_for": waiting},
                status=503,
                headers={"Retry-After": str(self.server.retry_after_s)},
            )
        return json_response({"status": "ready", "models": counts})

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics: Prometheus text."""
        body = self.gateway_metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def not_found(self, request: web.Request) -> web.Response:
        """Anything else: 405 for a known path with the wrong method, 404 otherwise."""
        allowed = self._known.get(request.path)
        if allowed is not None:
            return error_response(
                "method_not_allowed",
                f"{request.method} is not allowed on {request.path}; use {allowed}",
                headers={"Allow": allowed},
            )
        return error_response("not_found", f"no route {request.method} {request.path}")
