"""One generation request's path through the gateway, as named steps.

    authenticate -> read -> parse -> resolve -> validate -> admit (async with) -> prepare
    -> forward -> settle

Every step refuses by raising one `Refusal`; `handle` renders it in the OpenAI shape, and every
request leaves exactly one audit record. Admission is an `async with` block: whatever happens
inside it (a refusal, a client that goes away, a bug), its exit settles the request: the
concurrency slot is released and the token reservation reconciled to what reached the client.
An unexpected exception is a 500 in the OpenAI shape, logged once with its traceback (never
with request content).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from math import ceil
from typing import Any

import orjson
from aiohttp import web

from llmhost.config import ServerConfig
from llmhost.gateway import accounting
from llmhost.gateway.audit import prompt_sha256
from llmhost.gateway.auth import AuthError
from llmhost.gateway.errors import Refusal, StoreUnavailable, error_response, sse_error
from llmhost.gateway.limits import Limits
from llmhost.gateway.proxy import CLIENT_CLOSED, Exchange, forward
from llmhost.gateway.requests import Facts, validate
from llmhost.gateway.router.prefix import prefix_key
from llmhost.gateway.routes import ModelDirectory, Route
from llmhost.gateway.store import AuditRecord, KeyRecord
from llmhost.gateway.telemetry import Telemetry, Trace
from llmhost.gateway.tenancy import Tenancy
from llmhost.gateway.upstream import UpstreamError, UpstreamPool

log = logging.getLogger("llmhost.gateway")
_PROCESS = secrets.token_hex(6)  # this gateway process, among all that share Redis
_COUNTER = itertools.count()


def next_request_id() -> str:
    """A request id unique across gateway processes (Redis concurrency leases are keyed by it)
    without a system call per request: a random per-process part and a counter."""
    return f"{_PROCESS}{next(_COUNTER):010x}"


TOKENIZE_TIMEOUT_S = 2.0


@dataclass(slots=True)
class RequestContext:
    """What one request has gathered so far, step by step."""

    path: str
    started: float
    request_id: str
    key: KeyRecord | None = None
    route: Route | None = None
    model: str = ""  # as audited: the route's name once resolved, else the name asked for
    prompt_hash: str | None = None
    status: int = 500
    limits: Limits | None = None
    reserved: int = 0
    prompt_tokens: int = 0  # as counted for the reservation (tokenizer, else the byte bound)
    prompt_exact: bool = False  # counted by the engine's tokenizer
    exchange: Exchange | None = None
    settled: bool = False  # admission's exit took over the audit record
    trace: Trace | None = None  # OpenTelemetry spans, when export is on
    remote: str = "-"  # the client's address, for the access line


def _allowed(key: KeyRecord | None, route: Route) -> bool:
    """Whether the key may use the route (a canary's by the model it stands in for)."""
    name = (route.canary_of or route).name
    return key is None or key.models is None or name in key.models


def _clean(text: str) -> str:
    """A client's string as the audit may store it: at most 200 characters, no NUL."""
    return text[:200].replace("\x00", "\ufffd")


class Pipeline:
    """The request path for /v1/chat/completions, /v1/completions and /v1/embeddings."""

    def __init__(
        self,
        server: ServerConfig,
        directory: ModelDirectory,
        pool: UpstreamPool,
        tenancy: Tenancy,
        clock: Callable[[], float] = time.perf_counter,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.server = server
        self.directory = directory
        self.pool = pool
        self.tenancy = tenancy
        self.clock = clock
        self.telemetry = telemetry

    async def handle(self, request: web.Request, path: str) -> web.StreamResponse:
        """Serve one request; whatever happens, answer in the OpenAI shape and audit it."""
        ctx = RequestContext(path, self.clock(), next_request_id(), remote=request.remote or "-")
        if self.telemetry is not None:
            ctx.trace = self.telemetry.begin(request, path)
        try:
            return await self._run(request, ctx)
        except Refusal as refusal:
            ctx.status = refusal.status
            return refusal.response()
        except asyncio.CancelledError:
            ctx.status = CLIENT_CLOSED
            raise
        except Exception as exc:
            ctx.status = 500
            _log_unexpected(exc, ctx)
            return await self._internal_error(ctx)
        finally:
            if not ctx.settled:
                self._audit(ctx)

    async def _run(self, request: web.Request, ctx: RequestContext) -> web.StreamResponse:
        ctx.key = await self.authenticate(request)
        body = await self.read(request)
        payload = self.parse(body)
        ctx.route = route = self.resolve(payload, ctx, request.headers.get("x-llmhost-tier"))
        facts = self.validate(payload, ctx.path, route)
        async with self.admit(ctx, route, payload, facts):
            body = self.prepare(ctx, route, payload, body, facts)
            return await self.forward(request, ctx, route, body)

    # the steps
    async def authenticate(self, request: web.Request) -> KeyRecord | None:
        """The caller's key (None when the gateway is open)."""
        auth = self.tenancy.auth
        if auth is None:
            return None
        try:
            return await auth.authenticate(request.headers.get("Authorization"))
        except AuthError as exc:
            self.tenancy.failures.note(request.remote, str(exc))
            raise Refusal("invalid_api_key", str(exc)) from None
        except StoreUnavailable:
            raise self._store_down("the key store") from None

    async def read(self, request: web.Request) -> bytes:
        """The body, bounded in size and in time."""
        length = request.content_length
        if length is not None and length > self.server.max_body_bytes:
            raise self._too_large()
        try:
            async with asyncio.timeout(self.server.body_read_timeout_s):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise self._too_large() from None
        except TimeoutError:
            raise Refusal("request_timeout", "the body did not arrive in time") from None

    def parse(self, body: bytes) -> dict[str, Any]:
        """The body as a JSON object."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Refusal("invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise Refusal("invalid_json", "the body must be a JSON object")
        return payload

    def resolve(self, payload: dict[str, Any], ctx: RequestContext, tier: str | None) -> Route:
        """The route for the requested model (or tier), if this caller may use it."""
        model = payload.get("model")
        if not isinstance(model, str):
            raise Refusal("invalid_value", "'model' is required: a string", "model")
        ctx.model = _clean(model)
        route = self.directory.choose(model, tier)
        if route is None:
            served = ", ".join(sorted(self.directory.names_for(lambda r: _allowed(ctx.key, r))))
            raise Refusal(
                "model_not_found",
                f"model '{ctx.model}' is not served here; served: {served}",
                "model",
            )
        if not _allowed(ctx.key, route):
            raise Refusal(
                "model_not_allowed", f"this API key may not use model '{ctx.model}'", "model"
            )
        ctx.model = route.name
        return route

    def validate(self, payload: dict[str, Any], path: str, route: Route) -> Facts:
        """The body against the OpenAI request schema, and `max_tokens` against the context."""
        facts = validate(payload, path)
        context = route.config.context
        if facts.max_tokens is not None and facts.max_tokens > context:
            raise Refusal(
                "invalid_value",
                f"max_tokens {facts.max_tokens} is over the model's context of {context} tokens",
                "max_tokens",
            )
        return facts

    def admit(
        self, ctx: RequestContext, route: Route, payload: dict[str, Any], facts: Facts
    ) -> Admission:
        """`async with`: reserve the request's share of its key's limits; on exit, always
        settle it."""
        return Admission(self, ctx, route, payload, facts)

    async def reserve(
        self, ctx: RequestContext, route: Route, payload: dict[str, Any], facts: Facts
    ) -> None:
        """Admission proper: count the prompt when token limits need it, reserve, or refuse."""
        key = ctx.key
        if key is None:
            return
        ctx.limits = Limits(
            key.prefix, key.tenant, key.rpm, key.tpm, key.max_concurrent, key.monthly_tokens
        )
        if key.tpm or key.monthly_tokens is not None:
            await self._count_prompt(ctx, route, payload)
            output = 0 if ctx.path == "/v1/embeddings" else self._max_tokens(facts)
            ctx.reserved = accounting.reservation(ctx.prompt_tokens, output, facts.choices)
        try:
            decision = await self.tenancy.counters.admit(ctx.limits, ctx.reserved, ctx.request_id)
        except StoreUnavailable:
            raise self._store_down("the limit store") from None
        if not decision.allowed:
            code = "insufficient_quota" if decision.kind == "budget" else "rate_limit_exceeded"
            headers = {**decision.headers, "Retry-After": str(ceil(decision.retry_after_s))}
            raise Refusal(code, decision.message, headers=headers)

    def release(self, ctx: RequestContext) -> None:
        """Settle an admitted request: at once when nothing needs awaiting (in-process limits,
        usage known), else in the background (a cut stream to count, Redis to tell)."""
        ex, limits = ctx.exchange, ctx.limits
        if ex is not None and ex.cut:
            self.tenancy.later(self._settle(ctx))
        elif limits is None or self.tenancy.counters.finish_now(
            limits, ctx.reserved, self._used(ctx), ctx.request_id
        ):
            self._audit(ctx)
        else:
            self.tenancy.later(self._settle(ctx))

    def prepare(
        self,
        ctx: RequestContext,
        route: Route,
        payload: dict[str, Any],
        body: bytes,
        facts: Facts,
    ) -> bytes:
        """The body for the engine: its model name, stream usage asked for, `max_tokens`
        bounded by the reservation; and the exchange that will record what happens."""
        stream = facts.stream and ctx.path != "/v1/embeddings"
        changed = payload["model"] != route.upstream_model
        if changed:
            payload["model"] = route.upstream_model
        strip_usage = False
        if stream:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                base = options if isinstance(options, dict) else {}
                payload["stream_options"] = {**base, "include_usage": True}
                strip_usage = changed = True
        if ctx.reserved and facts.max_tokens is None and ctx.path != "/v1/embeddings":
            payload["max_tokens"] = self.tenancy.default_max_tokens  # what the reservation holds
            changed = True
        ctx.prompt_hash = prompt_sha256(payload)
        ex = ctx.exchange = Exchange(started=ctx.started, stream=stream, strip_usage=strip_usage)
        if route.keyed:
            ex.key = prefix_key(payload, route.config.prefix_chars)
        ex.source = ctx.key.tenant if ctx.key is not None else ctx.prompt_hash or ""
        if self.telemetry is not None:
            engine = route.config.engine
            ex.headers = self.telemetry.upstream_headers(
                ctx.trace, engine, route.upstream_model, ctx.path
            )
        return orjson.dumps(payload) if changed else body

    async def forward(
        self, request: web.Request, ctx: RequestContext, route: Route, body: bytes
    ) -> web.StreamResponse:
        """Relay to a replica (see `proxy.forward`), with the model's in-flight gauge."""
        assert ctx.exchange is not None
        server = self.server
        route.metrics.inflight.inc()
        try:
            return await forward(
                request,
                self.pool,
                route,
                ctx.path,
                body,
                ctx.exchange,
                server.first_byte_timeout_s,
                server.total_timeout_s,
                server.retry_after_s,
            )
        finally:
            route.metrics.inflight.dec()

    async def _settle(self, ctx: RequestContext) -> None:
        """After the response: count what a cut stream delivered, release the reservation
        (reconciled to the tokens used), update the metrics and write the audit record."""
        try:
            ex = ctx.exchange
            if ex is not None and ex.cut and ctx.route is not None:
                await self._count_delivered(ctx, ctx.route, ex)
        finally:
            self._audit(ctx)
            if ctx.limits is not None:
                await self.tenancy.counters.finish(
                    ctx.limits, ctx.reserved, self._used(ctx), ctx.request_id
                )

    # helpers
    def _finish_now(self, ctx: RequestContext, limits: Limits) -> bool:
        used = self._used(ctx)
        return self.tenancy.counters.finish_now(limits, ctx.reserved, used, ctx.request_id)

    def _used(self, ctx: RequestContext) -> int:
        ex = ctx.exchange
        return ex.prompt_tokens + ex.completion_tokens if ex is not None else 0

    def _max_tokens(self, facts: Facts) -> int:
        return facts.max_tokens or self.tenancy.default_max_tokens

    async def _count_prompt(
        self, ctx: RequestContext, route: Route, payload: dict[str, Any]
    ) -> None:
        """The prompt's tokens for the reservation: the engine's tokenizer, else the bound."""
        texts, ids, messages = accounting.prompt_texts(payload)
        counted = await self._tokenize(route, "\n".join(texts)) if texts else 0
        if counted is not None:
            extra = accounting.TEMPLATE_ALLOWANCE * messages
            ctx.prompt_tokens, ctx.prompt_exact = counted + ids + extra, True
        else:
            ctx.prompt_tokens = accounting.byte_bound(texts, ids, messages)

    async def _count_delivered(self, ctx: RequestContext, route: Route, ex: Exchange) -> None:
        """A cut stream: charge the prompt as reserved and the completion text relayed."""
        text, events = accounting.relayed_text(ex.relayed)
        counted = await self._tokenize(route, text) if text else 0
        if ex.prompt_tokens == 0:
            ex.prompt_tokens = ctx.prompt_tokens
        ex.completion_tokens = max(
            ex.completion_tokens,
            counted if counted is not None else accounting.estimate_completion(text, events),
        )

    async def _tokenize(self, route: Route, text: str) -> int | None:
        """Tokens in `text` by the engine's own tokenizer; None when there is none to ask."""
        adapter = route.replica_set.adapter
        ready = route.replica_set.ready()
        if adapter.tokenize_path is None or not ready:
            return None
        body = adapter.tokenize_body(text, route.upstream_model)
        resp = None
        try:
            async with asyncio.timeout(TOKENIZE_TIMEOUT_S):
                resp = await self.pool.post(
                    ready[0].url, adapter.tokenize_path, body, route.headers
                )
                data = await resp.read()
        except (UpstreamError, TimeoutError):
            return None
        finally:
            if resp is not None:
                resp.release()  # reuses the connection if read to its end, else closes it
        return adapter.token_count(data) if resp.status == 200 else None

    def _audit(self, ctx: RequestContext) -> None:
        """Queue the request's audit record (counts and timings, never content)."""
        key, ex = ctx.key, ctx.exchange
        seconds = self.clock() - ctx.started
        route = ctx.route
        if route is not None:
            prompt, completion = (ex.prompt_tokens, ex.completion_tokens) if ex else (0, 0)
            route.metrics.finished(ctx.status, seconds, prompt, completion)
            if ex is not None and ex.ttft is not None:
                route.metrics.ttft.observe(ex.ttft)
        if self.telemetry is not None:
            self.telemetry.finish(ctx, seconds)
        record = AuditRecord(
            ts=time.time(),
            key_prefix=key.prefix if key else None,
            tenant=key.tenant if key else None,
            model=ctx.model,
            replica=ex.replica.id if ex and ex.replica else None,
            status=ctx.status,
            prompt_tokens=ex.prompt_tokens if ex else 0,
            completion_tokens=ex.completion_tokens if ex else 0,
            ttft_ms=ex.ttft * 1000 if ex and ex.ttft is not None else None,
            duration_ms=seconds * 1000,
            prompt_sha256=ctx.prompt_hash,
        )
        self.tenancy.audit.record(record)
        self.tenancy.audit.access(record, ctx.remote, ctx.path)

    async def _internal_error(self, ctx: RequestContext) -> web.StreamResponse:
        """The 500 answer; inside a stream already started, an error event that ends it."""
        message = f"the gateway failed on this request (id {ctx.request_id}); it is logged"
        out = ctx.exchange.out if ctx.exchange is not None else None
        if out is not None and out.prepared:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await out.write(sse_error("internal_error", message))
                await out.write_eof()
            return out
        return error_response("internal_error", message)

    def _store_down(self, what: str) -> Refusal:
        retry = str(self.server.retry_after_s)
        return Refusal(
            "store_unavailable",
            f"{what} is unreachable right now; retry shortly",
            headers={"Retry-After": retry},
        )

    def _too_large(self) -> Refusal:
        return Refusal(
            "request_too_large", f"the body is over the {self.server.max_body_bytes}-byte limit"
        )


class Admission:
    """The admission block: entering reserves (or refuses with a `Refusal`); leaving, however
    it happens (an answer, a refusal, a client gone, a bug), settles the request exactly once."""

    __slots__ = ("ctx", "facts", "payload", "pipeline", "route")

    def __init__(
        self,
        pipeline: Pipeline,
        ctx: RequestContext,
        route: Route,
        payload: dict[str, Any],
        facts: Facts,
    ) -> None:
        self.pipeline = pipeline
        self.ctx = ctx
        self.route = route
        self.payload = payload
        self.facts = facts

    async def __aenter__(self) -> None:
        await self.pipeline.reserve(self.ctx, self.route, self.payload, self.facts)
        self.ctx.settled = True  # from here on, the settlement writes the audit record

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        ctx = self.ctx
        if exc is None:
            if ctx.exchange is not None:
                ctx.status = ctx.exchange.status
        elif isinstance(exc, Refusal):
            ctx.status = exc.status
        elif isinstance(exc, asyncio.CancelledError):
            ctx.status = CLIENT_CLOSED
        else:
            ctx.status = 500
        self.pipeline.release(ctx)


def _log_unexpected(exc: Exception, ctx: RequestContext) -> None:
    """One log entry with the traceback's frames and the exception's type; its message is left
    out, since it may quote the request."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error(
        "unexpected %s on %s (request %s, model %s):\n%s",
        type(exc).__name__,
        ctx.path,
        ctx.request_id,
        ctx.model,
        frames,
    )
