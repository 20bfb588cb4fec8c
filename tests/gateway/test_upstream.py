"""The gateway's engine client against a raw TCP server that answers exactly as scripted:
each framing HTTP/1.1 allows, keep-alive reuse, the reuse race, breaks and back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from llmhost.engines.supervisor import free_port
from llmhost.gateway import upstream
from llmhost.gateway.upstream import UpstreamError, UpstreamPool

# A script: given the n-th request on a connection (and its raw bytes), what to send back.
# None means: close the connection without answering.
Script = Callable[[int, bytes], bytes | None]

OK_JSON = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)


class Server:
    def __init__(self, script: Script, close_after: bool) -> None:
        self.script = script
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.script(n, request)
                n += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def run(
    script: Script,
    scenario: Callable[[UpstreamPool, str, Server], Awaitable[None]],
    close_after: bool = False,
) -> None:
    async def main() -> None:
        server = Server(script, close_after)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
        pool = UpstreamPool()
        try:
            await scenario(pool, f"http://127.0.0.1:{server.port}", server)
        finally:
            pool.close()
            listener.close()
            await listener.wait_closed()

    uvloop.run(main())  # the loop `llmhost up` runs on


def test_content_length_body_and_keep_alive_reuse() -> None:
    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        for _ in range(3):
            resp = await pool.post(url, "/v1/x", b'{"a":1}', b"Authorization: Bearer k\r\n")
            assert resp.status == 200 and resp.content_type == "application/json"
            assert await resp.read() == b'{"ok":true}'
        assert server.connections == 1  # one connection, reused
        first = server.requests[0]
        assert first.startswith(b"POST /v1/x HTTP/1.1\r\n")
        assert b"Authorization: Bearer k\r\n" in first and first.endswith(b'{"a":1}')

    run(lambda n, r: OK_JSON, scenario)


def test_chunked_body_arrives_piece_by_piece() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"7\r\ndata: 1\r\n7\r\ndata: 2\r\n0\r\n\r\n"
    )

    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        resp = await pool.post(url, "/s", b"{}")
        assert resp.content_type == "text/event-stream"
        assert b"".join([c async for c in resp.iter_chunks()]) == b"data: 1data: 2"
        again = await pool.post(url, "/s", b"{}")
        assert await again.read() == b"data: 1data: 2"
        assert server.connections == 1

    run(lambda n, r: chunked, scenario)


def test_body_delimited_by_close() -> None:
    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        for _ in range(2):
            resp = await pool.post(url, "/", b"{}")
            assert await resp.read() == b"until the end"
        assert server.connections == 2  # such a connection cannot be reused

    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    run(lambda n, r: answer, scenario, close_after=True)


def test_reused_connection_closed_by_the_engine_is_retried_on_a_fresh_one() -> None:
    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        assert await (await pool.post(url, "/", b"{}")).read() == b'{"ok":true}'
        # The server drops the second request on that connection unanswered (the keep-alive race).
        assert await (await pool.post(url, "/", b"{}")).read() == b'{"ok":true}'
        assert server.connections == 2

    run(lambda n, r: OK_JSON if n == 0 else None, scenario)


def test_after_the_race_the_retry_never_takes_another_stale_idle_connection() -> None:
    """Like llama-server: every connection answers once, then drops the next request."""

    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        first = await asyncio.gather(*(pool.post(url, "/", b"{}") for _ in range(3)))
        for resp in first:
            assert await resp.read() == b'{"ok":true}'  # three idle connections, all stale
        assert server.connections == 3
        again = await pool.post(url, "/", b"{}")  # stale one, then a new one: not stale two
        assert await again.read() == b'{"ok":true}'
        assert server.connections == 4
        assert await (await pool.post(url, "/", b"{}")).read() == b'{"ok":true}'

    run(lambda n, r: OK_JSON if n == 0 else None, scenario)


def test_fresh_connection_closed_without_answer_is_an_error() -> None:
    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        with pytest.raises(UpstreamError, match="closed the connection"):
            await pool.post(url, "/", b"{}")

    run(lambda n, r: None, scenario)


def test_body_cut_short_is_an_error() -> None:
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"

    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        resp = await pool.post(url, "/", b"{}")
        with pytest.raises(UpstreamError, match="closed the connection"):
            await resp.read()

    run(lambda n, r: short, scenario, close_after=True)


def test_nothing_listening_is_an_error() -> None:
    async def main() -> None:
        pool = UpstreamPool()
        with pytest.raises(UpstreamError, match="cannot connect"):
            await pool.post(f"http://127.0.0.1:{free_port()}", "/", b"{}")

    uvloop.run(main())


def test_malformed_response_is_an_error() -> None:
    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        with pytest.raises(UpstreamError, match="bad response"):
            await pool.post(url, "/", b"{}")

    run(lambda n, r: b"NOT HTTP AT ALL\r\n\r\n", scenario)


def test_a_slow_reader_pauses_the_engine_and_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "PAUSE_ABOVE", 64 * 1024)
    big = bytes(range(256)) * 8192  # 2 MiB
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big

    async def scenario(pool: UpstreamPool, url: str, server: Server) -> None:
        resp = await pool.post(url, "/", b"{}")
        await asyncio.sleep(0.2)  # let the engine fill the buffer while nobody reads
        conn = resp._conn
        assert conn.paused and conn.buffered < 1024 * 1024
        got = b"".join([c async for c in resp.iter_chunks()])
        assert got == big and not conn.paused

    run(lambda n, r: answer, scenario)
