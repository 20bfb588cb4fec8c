"""The gateway's HTTP surface: OpenAI-compatible endpoints, health, readiness, metrics and its
own OpenAPI document.

Generation requests go through `pipeline.Pipeline` (authenticate, read, parse, resolve, validate,
admit, prepare, forward, settle); this module only wires the routes and answers the small ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from llmhost.config import ServerConfig
from llmhost.engines.replicas import ReplicaState
from llmhost.gateway.admin import AdminApi
from llmhost.gateway.auth import bearer_matches
from llmhost.gateway.errors import Refusal, error_response, json_response
from llmhost.gateway.metrics import GatewayMetrics
from llmhost.gateway.openapi import openapi_document
from llmhost.gateway.pipeline import Pipeline
from llmhost.gateway.routes import ModelDirectory, Route
from llmhost.gateway.telemetry import Telemetry
from llmhost.gateway.tenancy import Tenancy
from llmhost.gateway.upstream import UpstreamPool


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
        clock: Callable[[], float] = time.perf_counter,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.server = server
        self.routes = list(routes)
        self.directory = ModelDirectory(routes, tiers)
        self.gateway_metrics = metrics
        self.tenancy = tenancy
        self.pipeline = Pipeline(server, self.directory, pool, tenancy, clock, telemetry)
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
        if self.server.metrics_port is None:
            app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/openapi.json", self.openapi)
        AdminApi(self.tenancy, self.server.retry_after_s, self.health_view).add_routes(app)
        if self.server.console_on():  # the web console at /ui: off the request path
            from llmhost.gateway.console import Console

            Console(self.server, self.tenancy, self.health_view, self.routes).add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        self._known = {
            r.resource.canonical: r.method  # type: ignore[union-attr]
            for r in app.router.routes()
            if r.method != "*" and r.method != "HEAD"
        }
        return app

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/chat/completions."""
        return await self.pipeline.handle(request, "/v1/chat/completions")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/completions."""
        return await self.pipeline.handle(request, "/v1/completions")

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/embeddings (the engine answers if it serves embeddings)."""
        return await self.pipeline.handle(request, "/v1/embeddings")

    def metrics_app(self) -> web.Application:
        """An application serving only /metrics, for `server.metrics_port`."""
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        return app

    async def models(self, request: web.Request) -> web.Response:
        """GET /v1/models: the models this caller may use, with aliases and ready replicas."""
        try:
            key = await self.pipeline.authenticate(request)
        except Refusal as refusal:
            return refusal.response()
        data = [
            {
                "id": route.name,
                "object": "model",
                "created": self.created,
                "owned_by": "llmhost",
                "aliases": list(route.config.aliases),
                **({"description": route.config.description} if route.config.description else {}),
                "engine": route.config.engine,
                "ready_replicas": len(route.replica_set.ready()),
            }
            for route in self.routes
            if key is None or key.models is None or route.name in key.models
        ]
        return json_response({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        """GET /health: the gateway process is alive."""
        return json_response({"status": "ok"})

    async def ready(self, request: web.Request) -> web.Response:
        """GET /ready: 200 when every model can serve (a ready replica, or it is at zero and
        wakes on demand), else 503 naming those that cannot. `replicas` says, per model, how
        many replicas are in each state, ejected ones (sitting out after errors) apart."""
        counts = {route.name: len(route.replica_set.ready()) for route in self.routes}
        waiting = sorted(r.name for r in self.routes if not counts[r.name] and r.wake is None)
        body = {"models": counts, "replicas": {r.name: _states(r) for r in self.routes}}
        if waiting:
            return json_response(
                {"status": "not ready", **body, "waiting_for": waiting},
                status=503,
                headers={"Retry-After": str(self.server.retry_after_s)},
            )
        return json_response({"status": "ready", **body})

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics: Prometheus text; with `server.metrics_key_env` set, only for a caller
        with that bearer token."""
        expected = self.server.metrics_key()
        if expected is not None and not bearer_matches(request, expected):
            return error_response("invalid_api_key", "/metrics needs the metrics key")
        body = self.gateway_metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def health_view(self) -> dict[str, Any]:
        """Per model: replicas by state and requests queued (the admin health answer)."""
        return {
            "models": {
                route.name: {"replicas": _states(route), "queued": route.queued}
                for route in self.routes
            }
        }

    async def openapi(self, request: web.Request) -> web.Response:
        """GET /openapi.json: the gateway's OpenAPI document."""
        return json_response(openapi_document())

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


def _states(route: Route) -> dict[str, int]:
    """Replicas of a route by state; `ejected` are down while they sit out a passive ejection."""
    now = time.monotonic()
    states = {state.value: 0 for state in ReplicaState}
    states["ejected"] = 0
    for replica in route.replica_set.replicas:
        if replica.state is ReplicaState.DOWN and replica.ejected_until > now:
            states["ejected"] += 1
        else:
            states[replica.state.value] += 1
    return states
