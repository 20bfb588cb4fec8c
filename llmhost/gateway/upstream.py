"""The gateway's HTTP/1.1 client to engines: keep-alive connections, streamed bodies.

Why not aiohttp's client: measured here it costs about 210 µs of CPU per request, more than half
of what the whole gateway spends on one; this client, with llhttp doing the parsing (through
`httptools`, the parser uvicorn uses), costs about 55 µs. It does only what the hop from gateway
to engine needs: POST with a body already in bytes, a response read whole or chunk by chunk,
connections reused per origin. Clients never reach it; engines are the only peers.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

PAUSE_ABOVE = 512 * 1024  # stop reading from an engine when this much is waiting for the client
MAX_IDLE_PER_ORIGIN = 256
IDLE_EXPIRY_S = 4.0  # below the usual 5 s keep-alive of engines (cpp-httplib, uvicorn)


class UpstreamError(Exception):
    """The connection to the engine failed, or broke before the response was complete."""


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port of an engine, with the bytes every request to it starts with."""

    host: str
    port: int
    tls: bool
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Origin:
        """The origin of a base URL such as http://127.0.0.1:8080."""
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if tls else 80)
        return cls(host, port, tls, parts.netloc.encode())


class _Connection(asyncio.Protocol):
    """One keep-alive connection; holds at most one response at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.reused = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.content_type = b""
        self.framed = False  # Content-Length or chunked: the body's end is known
        self.keep_alive = False
        self.got_bytes = False
        self.headers_done: asyncio.Future[None] = self.loop.create_future()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.complete = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, though they behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"bad response from engine: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.headers_done.done() and not self.framed and not self.complete:
            self.complete = True  # a body delimited by the connection closing
            self._wake()
        elif not self.complete:
            self._fail(UpstreamError("engine closed the connection" + (f": {exc}" if exc else "")))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-type":
            self.content_type = value
        elif lower == b"content-length" or (
            lower == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > PAUSE_ABOVE and self.transport is not None and not self.paused:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # helpers
    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        if not self.headers_done.done():
            self.headers_done.set_exception(exc)
            self.headers_done.exception()  # retrieved: no "never retrieved" warning
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def send(self, data: bytes) -> None:
        self._reset()
        assert self.transport is not None
        self.transport.write(data)

    async def next_chunk(self) -> bytes | None:
        """The next piece of body as it arrives; None at its end."""
        while not self.chunks:
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            await self.waiter
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < PAUSE_ABOVE // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        return chunk

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class UpstreamResponse:
    """An engine's response: status and content type now, the body read whole or streamed."""

    def __init__(self, pool: UpstreamPool, origin: Origin, conn: _Connection) -> None:
        self._pool = pool
        self._origin = origin
        self._conn = conn
        self.status = conn.status
        self.content_type = conn.content_type.decode("latin-1") or "application/json"
        self._finished = False

    @property
    def close_delimited(self) -> bool:
        """Whether the body ends only when the engine closes the connection (no length, not
        chunked): then a crash mid-body looks like its end, and the caller must check."""
        return not self._conn.framed

    async def read(self) -> bytes:
        """The whole body."""
        parts = []
        while (chunk := await self._conn.next_chunk()) is not None:
            parts.append(chunk)
        self.release()
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as the engine sends them."""
        while (chunk := await self._conn.next_chunk()) is not None:
            yield chunk
        self.release()

    def release(self) -> None:
        """Give the connection back for reuse if the body was read to its end, else close it."""
        if self._finished:
            return
        self._finished = True
        conn = self._conn
        if conn.complete and conn.keep_alive and not conn.chunks and conn.transport is not None:
            self._pool._put_back(self._origin, conn)
        else:
            conn.close()

    def close(self) -> None:
        """Abandon the response (client gone, timeout): the connection is closed, which is
        what tells the engine to stop generating."""
        self._finished = True
        self._conn.close()


class UpstreamPool:
    """Keep-alive connections to every engine origin, shared by all requests."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl = ssl_context
        self._origins: dict[str, Origin] = {}

    def origin(self, base_url: str) -> Origin:
        """The parsed origin of a base URL, cached."""
        found = self._origins.get(base_url)
        if found is None:
            found = self._origins[base_url] = Origin.parse(base_url)
        return found

    async def post(
        self, base_url: str, path: str, body: bytes, headers: bytes = b""
    ) -> UpstreamResponse:
        """POST `body` (JSON) to `base_url + path`; returns once the response headers are in.

        `headers` are extra header lines, each ending in CRLF. A reused connection that the
        engine had closed before answering is retried once on a new connection (never another
        idle one: an engine that closes one kept-alive connection has usually closed them all,
        so they are dropped too; llama-server does this after every stream).
        """
        origin = self.origin(base_url)
        request = b"".join(
            (
                b"POST ",
                path.encode(),
                b" HTTP/1.1\r\nHost: ",
                origin.host_header,
                b"\r\nContent-Type: application/json\r\nContent-Length: ",
                str(len(body)).encode(),
                b"\r\n",
                headers,
                b"\r\n",
                body,
            )
        )
        for attempt in range(2):
            conn = (self._take_idle(origin) if attempt == 0 else None) or await self._connect(
                origin
            )
            conn.send(request)
            try:
                await conn.headers_done
            except UpstreamError:
                conn.close()
                if conn.reused and not conn.got_bytes:
                    self._drop_idle(origin)  # the keep-alive race: the engine closed it
                    continue
                raise
            except asyncio.CancelledError:
                conn.close()
                raise
            return UpstreamResponse(self, origin, conn)
        raise UpstreamError("engine closed the connection")

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context = (self._ssl or ssl.create_default_context()) if origin.tls else None
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(loop),
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context else None,
            )
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {origin.host}:{origin.port}: {exc}") from exc
        return conn

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.transport is not None and now - conn.idle_since < IDLE_EXPIRY_S:
                conn.reused = True
                return conn
            conn.close()
        return None

    def _drop_idle(self, origin: Origin) -> None:
        for conn in self._idle.pop(origin, []):
            conn.close()

    def _put_back(self, origin: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        conn.idle_since = asyncio.get_running_loop().time()
        idle.append(conn)

    def close(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
