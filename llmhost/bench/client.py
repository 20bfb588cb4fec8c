"""One streamed chat completion, timed: when it was sent, each content chunk's arrival, the end,
and the usage the endpoint reports. Errors are classified, never raised."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from llmhost.bench.workload import Request


@dataclass
class Record:
    """What one request did. Times are seconds from the test's start."""

    start: float
    end: float = 0.0
    chunks: list[float] = field(default_factory=list)  # arrival of each chunk with content
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None  # http_4xx, http_5xx, timeout, connection, stream, empty
    status: int = 0
    detail: str | None = None  # what the endpoint said about an error (its message)

    @property
    def ok(self) -> bool:
        """Whether it finished with content and no error."""
        return self.error is None

    @property
    def ttft(self) -> float | None:
        """Time to the first content chunk."""
        return self.chunks[0] - self.start if self.chunks else None

    @property
    def latency(self) -> float:
        """End-to-end time."""
        return self.end - self.start

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (latency - TTFT) / (output tokens - 1)."""
        if self.ttft is None or self.output_tokens < 2:
            return None
        return (self.latency - self.ttft) / (self.output_tokens - 1)

    @property
    def itl(self) -> list[float]:
        """Every gap between consecutive content chunks."""
        return [b - a for a, b in zip(self.chunks, self.chunks[1:], strict=False)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived figures."""
        return {
            "start": self.start,
            "end": self.end,
            "status": self.status,
            "error": self.error,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "ttft": self.ttft,
            "tpot": self.tpot,
            "latency": self.latency,
            "detail": self.detail,
            "chunks": self.chunks,
        }


class Endpoint:
    """An OpenAI-compatible server: base URL (…/v1), model, key; one connection pool."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        force_length: bool = True,
        timeout_s: float = 600.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.force_length = force_length
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_read=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Endpoint:
        # A connection per request, as vLLM's benchmark does: servers differ in how they keep
        # connections alive (llama-server closes after every stream), and a reused connection
        # the server has dropped would show up as a failure that no user of it would see.
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def body(self, request: Request) -> bytes:
        """The request body: streamed, usage included, length forced where supported."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
            **request.extra,
        }
        if self.force_length:
            payload["ignore_eos"] = True  # vLLM and llama.cpp; others ignore unknown fields
            payload["min_tokens"] = request.max_tokens  # vLLM
        return orjson.dumps(payload)

    async def send(self, request: Request, clock: float) -> Record:
        """Send one request; `clock` is the test's start (perf_counter)."""
        assert self._session is not None, "use `async with Endpoint(...)`"
        record = Record(start=time.perf_counter() - clock)
        try:
            async with self._session.post(
                self.url, data=self.body(request), headers=self.headers
            ) as resp:
                record.status = resp.status
                if resp.status >= 400:
                    record.error = f"http_{resp.status // 100}xx"
                    record.detail = _message(await resp.read())
                else:
                    await self._read_stream(resp, record, clock)
        except TimeoutError:
            record.error = "timeout"
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            record.error = "stream" if record.status else "connection"
        except aiohttp.ClientError:
            record.error = "connection"
        record.end = time.perf_counter() - clock
        if record.error is None and not record.chunks:
            record.error = "empty"
        return record

    async def _read_stream(
        self, resp: aiohttp.ClientResponse, record: Record, clock: float
    ) -> None:
        done = False
        async for raw in resp.content:  # read to the end, so the connection can be reused
            line = raw.strip()
            if done or not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                continue
            event = orjson.loads(data)
            if "error" in event:
                record.error = "stream"
                continue
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or choice.get("text"):
                    record.chunks.append(time.perf_counter() - clock)
            usage = event.get("usage")
            if usage:
                record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                record.output_tokens = int(usage.get("completion_tokens") or 0)
        if not done:
            record.error = record.error or "stream"  # ended without [DONE]


def _message(body: bytes) -> str:
    """The error message of an OpenAI-shaped error body, else the body's start."""
    try:
        error = orjson.loads(body).get("error") or {}
        return str(error.get("message") or error)[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return body[:300].decode(errors="replace")
