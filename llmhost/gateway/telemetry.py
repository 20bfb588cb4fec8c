"""OpenTelemetry for the gateway (optional: `pip install llmhost[otel]`, `server.otel`).

Metrics follow the OpenTelemetry semantic conventions for generative AI at version
`SEMCONV_VERSION` (the names instrumentations keep until the conventions are stable):
`gen_ai.server.request.duration`, `gen_ai.server.time_to_first_token`,
`gen_ai.server.time_per_output_token` and `gen_ai.client.token.usage` (by `gen_ai.token.type`,
input or output: the gateway is the engine's client), with `gen_ai.operation.name`,
`gen_ai.request.model`, `gen_ai.system` (the engine kind) and `error.type` on failures.

Traces: one SERVER span per request (`{operation} {model}`, continuing the client's W3C
`traceparent` when it sends one), a CLIENT span for the hop to the engine whose context goes to
the engine as `traceparent` (vLLM continues it), and child spans for the queue wait and for each
attempt on a replica (a retry shows as a second attempt). Spans carry counts, statuses and
replica names; prompt and completion text are never attributes. Everything is exported over
OTLP/HTTP in the background; the request path only records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmhost import __version__
from llmhost.config import OtelConfig
from llmhost.errors import UsageError

if TYPE_CHECKING:
    from aiohttp import web

    from llmhost.gateway.pipeline import RequestContext

SEMCONV_VERSION = "1.36.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}
COMMON = ("gen_ai.operation.name", "gen_ai.request.model", "gen_ai.system", "error.type")
# (name, unit, attributes, meaning): the instruments below, for the metrics reference.
INSTRUMENTS = [
    ("gen_ai.server.request.duration", "s", COMMON, "Request duration, to the last byte."),
    ("gen_ai.server.time_to_first_token", "s", COMMON[:3], "Time to the first streamed token."),
    (
        "gen_ai.server.time_per_output_token",
        "s",
        COMMON[:3],
        "Time per output token after the first (streams).",
    ),
    (
        "gen_ai.client.token.usage",
        "{token}",
        (*COMMON[:3], "gen_ai.token.type"),
        "Input and output tokens of each request (the engine's usage).",
    ),
]
# Bucket boundaries the conventions recommend.
DURATION_BUCKETS = [
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
]
TTFT_BUCKETS = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
]
TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]


@dataclass
class Trace:
    """The spans of one request, started at its arrival (wall clock in ns for OTel)."""

    server: Any
    upstream: Any | None = None
    wall_start_ns: int = 0
    perf_start: float = 0.0


class Telemetry:
    """The OTel providers, instruments and tracer of one gateway process."""

    def __init__(self, config: OtelConfig) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:
            raise UsageError(
                "server.otel needs OpenTelemetry: pip install 'llmhost[otel]'"
            ) from None
        base = config.endpoint.rstrip("/")
        resource = Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        )
        self.propagator = TraceContextTextMapPropagator()
        self.meter_provider: Any = None
        self.tracer_provider: Any = None
        self.tracer: Any = None
        if config.metrics:
            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
                export_interval_millis=config.export_interval_s * 1000,
            )
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
            meter = self.meter_provider.get_meter("llmhost", __version__, schema_url=SCHEMA_URL)
            self.duration = meter.create_histogram(
                "gen_ai.server.request.duration",
                unit="s",
                description="Generative AI server request duration.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
            self.ttft = meter.create_histogram(
                "gen_ai.server.time_to_first_token",
                unit="s",
                description="Time to generate first token for successful responses.",
                explicit_bucket_boundaries_advisory=TTFT_BUCKETS,
            )
            self.tpot = meter.create_histogram(
                "gen_ai.server.time_per_output_token",
                unit="s",
                description="Time per output token generated after the first token.",
                explicit_bucket_boundaries_advisory=TPOT_BUCKETS,
            )
            self.tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )
        if config.traces:
            self.tracer_provider = TracerProvider(resource=resource)
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
            )
            self.tracer = self.tracer_provider.get_tracer(
                "llmhost", __version__, schema_url=SCHEMA_URL
            )

    def begin(self, request: web.Request, path: str) -> Trace | None:
        """Start the request's server span (continuing the caller's trace context)."""
        if self.tracer is None:
            return Trace(server=None, wall_start_ns=time.time_ns(), perf_start=time.perf_counter())
        from opentelemetry.trace import SpanKind

        parent = self.propagator.extract(dict(request.headers))
        span = self.tracer.start_span(
            OPERATIONS[path],
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": OPERATIONS[path],
                "http.request.method": "POST",
                "url.path": path,
            },
        )
        return Trace(server=span, wall_start_ns=time.time_ns(), perf_start=time.perf_counter())

    def upstream_headers(self, trace: Trace | None, engine: str, model: str, path: str) -> bytes:
        """Start the hop's CLIENT span; its `traceparent` header line for the engine."""
        if trace is None or trace.server is None:
            return b""
        from opentelemetry import trace as api
        from opentelemetry.trace import SpanKind

        context = api.set_span_in_context(trace.server)
        trace.upstream = self.tracer.start_span(
            f"{OPERATIONS[path]} {model}",
            context=context,
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.system": engine, "gen_ai.request.model": model},
        )
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=api.set_span_in_context(trace.upstream))
        return "".join(f"{name}: {value}\r\n" for name, value in carrier.items()).encode()

    def finish(self, ctx: RequestContext, seconds: float) -> None:
        """Record the metrics and end the spans of a finished request (counts, never text)."""
        trace = ctx.trace
        if trace is None:
            return
        ex = ctx.exchange
        route = ctx.route
        operation = OPERATIONS[ctx.path]
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": ctx.model,
            "gen_ai.system": route.config.engine if route is not None else "unknown",
        }
        if ctx.status >= 400:
            attributes["error.type"] = str(ctx.status)
        if self.meter_provider is not None:
            self.duration.record(seconds, attributes)
            if ex is not None and ctx.status == 200:
                if ex.ttft is not None:
                    self.ttft.record(ex.ttft, attributes)
                    if ex.completion_tokens > 1:
                        per_token = max(0.0, seconds - ex.ttft) / (ex.completion_tokens - 1)
                        self.tpot.record(per_token, attributes)
                if ex.prompt_tokens:
                    self.tokens.record(
                        ex.prompt_tokens, {**attributes, "gen_ai.token.type": "input"}
                    )
                if ex.completion_tokens:
                    self.tokens.record(
                        ex.completion_tokens, {**attributes, "gen_ai.token.type": "output"}
                    )
        if trace.server is not None:
            self._end_spans(trace, ctx, attributes)

    def _end_spans(self, trace: Trace, ctx: RequestContext, attributes: dict[str, Any]) -> None:
        from opentelemetry import trace as api
        from opentelemetry.trace import Status, StatusCode

        def wall(perf: float) -> int:
            return trace.wall_start_ns + int((perf - trace.perf_start) * 1e9)

        ex = ctx.exchange
        server = trace.server
        server.update_name(f"{attributes['gen_ai.operation.name']} {ctx.model}")
        server.set_attributes({**attributes, "http.response.status_code": ctx.status})
        if ctx.key is not None:
            server.set_attribute("llmhost.tenant", ctx.key.tenant)
        if ex is not None:
            server.set_attribute("gen_ai.usage.input_tokens", ex.prompt_tokens)
            server.set_attribute("gen_ai.usage.output_tokens", ex.completion_tokens)
            parent = api.set_span_in_context(trace.upstream or server)
            if ex.queue_s > 0:
                first = ex.attempts[0].started if ex.attempts else time.perf_counter()
                queue = self.tracer.start_span(
                    "queue wait", context=parent, start_time=wall(first - ex.queue_s)
                )
                queue.end(end_time=wall(first))
            for number, attempt in enumerate(ex.attempts, 1):
                span = self.tracer.start_span(
                    f"attempt {number}",
                    context=parent,
                    start_time=wall(attempt.started),
                    attributes={
                        "llmhost.replica": attempt.replica,
                        "http.response.status_code": attempt.status,
                    },
                )
                span.end(end_time=wall(attempt.ended))
        if trace.upstream is not None:
            trace.upstream.set_attribute("gen_ai.response.model", ctx.model)
            trace.upstream.end()
        if ctx.status >= 500:
            server.set_status(Status(StatusCode.ERROR))
        server.end()

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
