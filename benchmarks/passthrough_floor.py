"""The floor for any aiohttp-based gateway: a bare pass-through with no parsing, routing or
metrics (a streamed answer is relayed piece by piece as it arrives). `gateway_overhead.py` runs
it beside llmhost so the cost of llmhost's own work (as opposed to the HTTP stack's) is
visible. Not part of the product.

Usage: passthrough_floor.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys

import aiohttp
import uvloop
from aiohttp import web


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2]
    state: dict[str, aiohttp.ClientSession] = {}

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with state["session"].post(
            upstream + request.path, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            if resp.content_type == "text/event-stream":  # relay each piece as it arrives
                out = web.StreamResponse(
                    status=resp.status, headers={"Content-Type": "text/event-stream"}
                )
                await out.prepare(request)
                async for piece in resp.content.iter_any():
                    await out.write(piece)
                await out.write_eof()
                return out
            data = await resp.read()
        return web.Response(status=resp.status, body=data, content_type="application/json")

    async def start(app: web.Application) -> None:
        state["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.on_startup.append(start)
    app.router.add_post("/v1/chat/completions", relay)
    app.router.add_get("/health", health)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
