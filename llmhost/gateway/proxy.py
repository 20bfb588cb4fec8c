"""Relaying one request to an engine replica: retry before the first byte, stream straight
through, count usage, and turn upstream trouble into OpenAI-shaped errors.

Streams are relayed event by event as they arrive. When the gateway asked the engine for usage
on the client's behalf (`stream_options.include_usage`), the usage-only chunk is read for the
counters and not passed on, so the client sees exactly the stream it asked for.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson
from aiohttp import web

from llmhost.engines.replicas import Replica, ReplicaState
from llmhost.gateway.errors import error_response, sse_error
from llmhost.gateway.routes import Route
from llmhost.gateway.upstream import UpstreamError, UpstreamPool, UpstreamResponse

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
RETRYABLE_STATUS = frozenset({502, 503})  # engine loading, restarting or overloaded
_EVENT_END = re.compile(rb"\r?\n\r?\n")
CLIENT_CLOSED = 499  # nginx's code for "the client went away"; used in metrics only
EJECT_AFTER = 3  # server errors or timeouts in a row before a replica is ejected...
EJECT_WITNESSES = 2  # ...seen by this many different senders (one tenant cannot eject it)
EJECT_S = 10.0  # how long an ejected replica sits out before health checks may readmit it


class Attempt(NamedTuple):
    """One try of a request on one replica: when it started and ended (perf_counter), and the
    status it ended with (0: no answer)."""

    replica: str
    started: float
    ended: float
    status: int


@dataclass(slots=True)
class Exchange:
    """What happened to one request, for metrics, accounting and the audit record."""

    started: float
    stream: bool
    strip_usage: bool
    key: bytes = b""  # routing key (prompt prefix) for affinity strategies
    source: str = ""  # who sent it (tenant, or prompt hash when open): passive ejection's witness
    status: int = 500
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_seen: bool = False  # the engine reported usage (else a cut stream is counted)
    ttft: float | None = None
    replica: Replica | None = None
    tried: list[Replica] = field(default_factory=list)
    relayed: list[bytes] = field(default_factory=list)  # stream events sent to the client
    out: web.StreamResponse | None = None  # the client's stream, once started
    headers: bytes = b""  # extra header lines for the engine (trace context), CRLF-ended
    queue_s: float = 0.0  # time spent waiting for a replica with room
    attempts: list[Attempt] = field(default_factory=list)  # each try, for traces

    @property
    def cut(self) -> bool:
        """A stream that reached the client in part and ended without the engine's usage."""
        return self.stream and bool(self.relayed) and not self.usage_seen


class _Retry(Exception):
    """This replica failed before anything reached the client: try another."""


class _UpstreamBroke(Exception):
    """The engine's stream ended abnormally after it had started."""


async def forward(
    request: web.Request,
    pool: UpstreamPool,
    route: Route,
    path: str,
    body: bytes,
    ex: Exchange,
    first_byte_timeout_s: float,
    total_timeout_s: float,
    retry_after_s: int,
) -> web.StreamResponse:
    """Send `body` to a ready replica of `route` (a second one if the first fails early)."""
    total_deadline = ex.started + total_timeout_s
    first_deadline = min(total_deadline, ex.started + first_byte_timeout_s)
    queue_deadline = ex.started + route.config.queue_wait_s
    for _attempt in range(2):
        # Both attempts may wait in the queue (a retry for another replica with room).
        waited = time.perf_counter()
        replica = await route.acquire(ex.key, ex.tried, queue_deadline)
        started = time.perf_counter()
        ex.queue_s += started - waited
        if replica is None:
            break
        ex.tried.append(replica)
        ex.replica = replica
        replica.inflight += 1
        try:
            return await _attempt_once(
                request, pool, route, replica, path, body, ex, first_deadline, total_deadline
            )
        except _Retry:
            ex.status = 0
            continue
        except TimeoutError:
            ex.status = 504
            _errored(route, replica, ex.source)
            which = "first byte" if ex.stream else "response"
            return error_response(
                "upstream_timeout", f"the engine did not send its {which} in time"
            )
        finally:
            replica.inflight -= 1
            route.last_active = time.monotonic()
            route.notify()
            ex.attempts.append(Attempt(replica.id, started, time.perf_counter(), ex.status))
    if not ex.tried:
        ex.status = 503
        return error_response(
            "no_backend",
            f"no replica of '{route.name}' could take the request in time; retry shortly",
            headers={"Retry-After": str(retry_after_s)},
        )
    ex.status = 502
    return error_response(
        "upstream_error", f"the engine for '{route.name}' failed on {len(ex.tried)} replica(s)"
    )


async def _attempt_once(
    request: web.Request,
    pool: UpstreamPool,
    route: Route,
    replica: Replica,
    path: str,
    body: bytes,
    ex: Exchange,
    first_deadline: float,
    total_deadline: float,
) -> web.StreamResponse:
    last_try = len(ex.tried) >= 2 or all(r in ex.tried for r in route.replica_set.ready())
    async with asyncio.timeout(_left(first_deadline if ex.stream else total_deadline)):
        try:
            resp = await pool.post(replica.url, path, body, route.headers + ex.headers)
        except UpstreamError as exc:
            _failed(route, replica)
            raise _Retry from exc
        if resp.status >= 500:
            _errored(route, replica, ex.source)
        else:
            replica.failures = 0
            replica.error_sources.clear()
        if resp.status in RETRYABLE_STATUS and not last_try:
            resp.close()
            raise _Retry
        if not ex.stream or resp.status != 200:
            return await _relay_whole(resp, ex)
        events = _events(resp, ex)
        try:
            first = await anext(events)
        except (_UpstreamBroke, StopAsyncIteration) as exc:
            resp.close()
            _failed(route, replica)
            raise _Retry from exc
    return await _relay_stream(request, resp, events, first, ex, total_deadline)


async def _relay_whole(resp: UpstreamResponse, ex: Exchange) -> web.Response:
    """A non-streamed answer (or an engine error): read it all, count usage, pass it on."""
    try:
        data = await resp.read()
    except UpstreamError as exc:
        raise _Retry from exc
    finally:
        resp.release()
    ex.status = resp.status
    if resp.close_delimited and resp.status == 200 and not _is_json(data):
        ex.status = 502  # the engine died mid-body: a cut-off answer is no answer
        return error_response("upstream_error", "the engine's answer broke off")
    if resp.status == 200 and b'"usage"' in data:
        _count_usage(data, ex)
    return web.Response(status=resp.status, body=data, headers={"Content-Type": resp.content_type})


async def _relay_stream(
    request: web.Request,
    resp: UpstreamResponse,
    events: AsyncIterator[bytes],
    first: bytes,
    ex: Exchange,
    total_deadline: float,
) -> web.StreamResponse:
    out = ex.out = web.StreamResponse(status=200, headers=SSE_HEADERS)
    complete = False
    try:
        await out.prepare(request)
        await out.write(first)
        ex.relayed.append(first)
        ex.ttft = time.perf_counter() - ex.started
        ex.status = 200
        try:
            async with asyncio.timeout(_left(total_deadline)):
                async for chunk in events:
                    await out.write(chunk)
                    ex.relayed.append(chunk)
            complete = True
        except TimeoutError:
            ex.status = 504
            await out.write(sse_error("upstream_timeout", "the engine did not finish in time"))
        except _UpstreamBroke:
            ex.status = 502
            await out.write(sse_error("upstream_error", "the engine's stream broke off"))
        await out.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        ex.status = CLIENT_CLOSED  # the client went away: closing upstream frees the engine slot
        resp.close()
        raise
    finally:
        if complete:
            resp.release()
        else:
            resp.close()
    return out


async def _events(resp: UpstreamResponse, ex: Exchange) -> AsyncIterator[bytes]:
    """Complete SSE events from the engine, as soon as each batch of them arrives.

    A stream whose end is the connection closing must have said `[DONE]` first: an engine that
    dies mid-stream also closes the connection, and that is a broken stream, not an answer.
    """
    buf = b""
    done = False
    try:
        async for chunk in resp.iter_chunks():
            buf += chunk
            end = _events_end(buf)
            if not end:
                continue
            ready, buf = buf[:end], buf[end:]
            done = done or b"[DONE]" in ready
            if b'"usage"' in ready:
                ready = _take_usage(ready, ex)
                if not ready:
                    continue
            yield ready
    except UpstreamError as exc:
        raise _UpstreamBroke from exc
    if buf.strip():
        done = done or b"[DONE]" in buf
        yield buf
    if resp.close_delimited and not done:
        raise _UpstreamBroke("the engine closed the stream before [DONE]")


def _events_end(buf: bytes) -> int:
    """Length of the complete SSE events at the start of `buf` (LF or CRLF line ends); 0 if none."""
    lf, crlf = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _take_usage(events: bytes, ex: Exchange) -> bytes:
    """Count usage from the events that carry it; drop what the client did not ask for."""
    kept = []
    for event in _EVENT_END.split(events):
        if not event:
            continue
        data = event[5:].strip() if event.startswith(b"data:") else b""
        if b'"usage"' in data:
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                kept.append(event)
                continue
            usage = chunk.get("usage") if isinstance(chunk, dict) else None
            if isinstance(usage, dict):
                _set_usage(usage, ex)
                if ex.strip_usage:
                    if not chunk.get("choices"):
                        continue
                    del chunk["usage"]
                    event = b"data: " + orjson.dumps(chunk)
        kept.append(event)
    return b"\n\n".join(kept) + b"\n\n" if kept else b""


def _count_usage(data: bytes, ex: Exchange) -> None:
    try:
        usage = orjson.loads(data).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return
    if isinstance(usage, dict):
        _set_usage(usage, ex)


def _set_usage(usage: dict[str, object], ex: Exchange) -> None:
    """Take the engine's usage report (counts that are not whole numbers count as 0)."""
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ex.prompt_tokens = prompt if type(prompt) is int and prompt > 0 else 0
    ex.completion_tokens = completion if type(completion) is int and completion > 0 else 0
    ex.usage_seen = True


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def _failed(route: Route, replica: Replica) -> None:
    """A connection to the replica failed: take it out until a health check brings it back."""
    replica.failures += 1
    route.replica_set.set_state(replica, ReplicaState.DOWN)


def _errored(route: Route, replica: Replica, source: str) -> None:
    """The replica answered with a server error or timed out. EJECT_AFTER in a row, from at
    least EJECT_WITNESSES different senders, eject it for EJECT_S even if its health URL still
    answers; then health checks may bring it back. A request whose content makes the engine fail
    is that request's error: one tenant repeating it cannot take the replica away from others."""
    replica.failures += 1
    replica.error_sources.add(source)
    if (
        replica.failures >= EJECT_AFTER
        and len(replica.error_sources) >= EJECT_WITNESSES
        and replica.state is ReplicaState.READY
    ):
        replica.ejected_until = time.monotonic() + EJECT_S
        route.replica_set.set_state(replica, ReplicaState.DOWN)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.perf_counter())
