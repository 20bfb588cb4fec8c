"""OpenTelemetry export with the real SDK to a real OTLP/HTTP receiver on loopback: GenAI
semantic-convention metrics, a trace per request that continues the client's `traceparent` and
passes it on to the engine, and never a prompt or completion in what is exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp import web

from tests.gateway.test_tenancy import call
from tests.support.harness import gateway, model, serving, standin

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is part of the dev install")
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

CANARY = "otel-canary-prompt-5d1e"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver:
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.spans: list[Any] = []
        self.metrics: dict[str, list[Any]] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_post("/v1/metrics", self.metric)
        return app

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append(body)
        message = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    async def metric(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append(body)
        message = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        for resource in message.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    self.metrics.setdefault(item.name, []).extend(item.histogram.data_points)
        answer = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")


def attributes(item: Any) -> dict[str, Any]:
    return {a.key: a.value.string_value or a.value.int_value for a in item.attributes}


def test_traces_and_genai_metrics_reach_an_otlp_receiver(tmp_path: Path) -> None:
    receiver = Receiver()
    chat = {"model": "m", "messages": [{"role": "user", "content": CANARY}], "max_tokens": 8}
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"

    async def scenario() -> list[dict[str, str]]:
        async with serving(receiver.app()) as otlp, standin() as (backend, burl):
            otel = {"endpoint": otlp, "export_interval_s": 0.2}
            server = {"store_url": f"sqlite:///{tmp_path / 'llmhost.db'}", "otel": otel}
            async with gateway([model("m", burl)], **server) as url:
                status, _, _ = await call(url, None, chat, traceparent=traceparent)
                assert status == 200
                stream = {**chat, "stream": True, "x_standin": {"chunks": 4}}
                assert (await call(url, None, stream))[0] == 200
                assert (await call(url, None, {**chat, "model": "nope"}))[0] == 404
            return backend.headers

    engine_headers = uvloop.run(scenario())
    servers = [s for s in receiver.spans if s.kind == s.SPAN_KIND_SERVER]
    clients = [s for s in receiver.spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(servers) == 3 and len(clients) == 2
    first = next(s for s in servers if s.trace_id.hex() == TRACE_ID)
    assert first.parent_span_id.hex() == PARENT_ID  # continues the client's trace
    assert first.name == "chat m"
    assert attributes(first)["gen_ai.request.model"] == "m"
    assert attributes(first)["gen_ai.usage.output_tokens"] == 6
    upstream = next(c for c in clients if c.trace_id == first.trace_id)
    assert upstream.parent_span_id == first.span_id
    attempt = next(
        s for s in receiver.spans if s.name == "attempt 1" and s.trace_id == first.trace_id
    )
    assert attempt.parent_span_id == upstream.span_id
    assert attributes(attempt)["llmhost.replica"] == "m-0"
    # The engine was handed the hop's context: same trace, the CLIENT span as parent.
    sent = engine_headers[0]["traceparent"]
    assert sent == f"00-{TRACE_ID}-{upstream.span_id.hex()}-01"
    # Metrics under the GenAI conventions.
    for name in (
        "gen_ai.server.request.duration",
        "gen_ai.client.token.usage",
        "gen_ai.server.time_to_first_token",
        "gen_ai.server.time_per_output_token",
    ):
        assert name in receiver.metrics, sorted(receiver.metrics)
    kinds = {
        attributes(p).get("gen_ai.token.type")
        for p in receiver.metrics["gen_ai.client.token.usage"]
    }
    assert kinds == {"input", "output"}
    errors = [
        p
        for p in receiver.metrics["gen_ai.server.request.duration"]
        if attributes(p).get("error.type") == "404"
    ]
    assert errors and all(attributes(p)["gen_ai.operation.name"] == "chat" for p in errors)
    # Content is never exported.
    assert all(CANARY.encode() not in body for body in receiver.raw)
