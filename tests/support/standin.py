"""A stand-in OpenAI-compatible backend, for tests and benchmarks of the gateway itself.

It is not an engine: it answers instantly with fixed text, so whatever time or failure is seen
through the gateway is the gateway's. A request may steer it with an `x_standin` object:
`delay_s` (before the headers), `status` (an error status to return), `chunks` (stream length),
`chunk_delay_s`, `break_after` (drop the connection after that many stream chunks), `reset`
(drop the connection before answering), `crlf` (end SSE lines with CRLF) and `usage: "count"`
(report usage as a worst-case tokenizer would: a prompt token per character, and `n` times the
chunks streamed; otherwise usage is a fixed 12 + 6). Run as a script to serve on a port.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson
from aiohttp import web

COMPLETION = orjson.dumps(
    {
        "id": "cmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": "standin",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the stand-in."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)


FIXED_USAGE = {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}


def counted_usage(body: dict[str, Any], completion: int) -> dict[str, int]:
    """Usage as a tokenizer of one token per character would report it."""
    messages = body.get("messages") or []
    texts = [m.get("content") for m in messages if isinstance(m, dict)]
    prompt = sum(len(t) for t in texts if isinstance(t, str)) + len(str(body.get("prompt") or ""))
    total = completion * int(body.get("n") or 1)
    return {"prompt_tokens": prompt, "completion_tokens": total, "total_tokens": prompt + total}


def _chunk(
    content: str | None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "id": "chunk-standin",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "standin",
        "choices": []
        if usage is not None
        else [
            {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


class StandIn:
    """The stand-in's handlers and what it has seen (for tests)."""

    def __init__(self, reset_all: bool = False, fail_status: int | None = None) -> None:
        self.reset_all = reset_all  # behave like a replica that accepts and then dies
        self.fail_status = fail_status  # behave like a replica that answers every request so
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_post("/v1/completions", self.generate)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.models)
        return app

    async def models(self, request: web.Request) -> web.Response:
        """A model list (also the health answer)."""
        return web.json_response({"object": "list", "data": [{"id": "standin"}]})

    async def embeddings(self, request: web.Request) -> web.Response:
        """A fixed embedding."""
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    async def generate(self, request: web.Request) -> web.StreamResponse:
        """Chat or text completion, streamed or not, shaped by `x_standin`."""
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        steer = body.get("x_standin") or {}
        if steer.get("reset") or self.reset_all:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if steer.get("delay_s"):
            await asyncio.sleep(steer["delay_s"])
        if steer.get("status") or self.fail_status:
            return web.json_response(
                {"error": {"message": "stand-in error", "type": "x", "code": None}},
                status=steer.get("status") or self.fail_status,
            )
        counting = steer.get("usage") == "count"
        if not body.get("stream"):
            if counting:
                whole = {**orjson.loads(COMPLETION), "usage": counted_usage(body, 6)}
                return web.Response(body=orjson.dumps(whole), content_type="application/json")
            return web.Response(body=COMPLETION, content_type="application/json")
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        if steer.get("crlf"):
            raw_write = out.write

            async def write(data: bytes) -> None:
                await raw_write(data.replace(b"\n", b"\r\n"))

            out.write = write  # type: ignore[method-assign]
        try:
            for i in range(int(steer.get("chunks", 3))):
                if steer.get("break_after") == i:
                    assert request.transport is not None
                    request.transport.close()
                    return out
                await out.write(_chunk(f"w{i} "))
                if steer.get("chunk_delay_s"):
                    await asyncio.sleep(steer["chunk_delay_s"])
            await out.write(_chunk(None, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                chunks = int(steer.get("chunks", 3))
                usage = counted_usage(body, chunks) if counting else FIXED_USAGE
                await out.write(_chunk(None, usage=usage))
            await out.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        return out


def main() -> None:
    """Serve the stand-in on --port (uvloop) until killed."""
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.install()
    web.run_app(
        StandIn().app(),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()
