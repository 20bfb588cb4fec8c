"""The gateway's Prometheus metrics, in one registry, with per-model children cached.

Looking up labelled children costs a lock and a dict per call; the request path instead holds a
`ModelMetrics` with its children resolved once per model.
"""

from __future__ import annotations

import contextlib

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the page and nobody graphs them

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ModelMetrics:
    """The metric children one model's requests update."""

    def __init__(self, metrics: GatewayMetrics, model: str) -> None:
        self._metrics = metrics
        self.model = model
        self.duration = metrics.duration.labels(model)
        self.ttft = metrics.ttft.labels(model)
        self.inflight = metrics.inflight.labels(model)
        self.prompt_tokens = metrics.tokens.labels(model, "prompt")
        self.completion_tokens = metrics.tokens.labels(model, "completion")
        self._by_status: dict[int, Counter] = {}

    def finished(self, status: int, seconds: float, prompt: int, completion: int) -> None:
        """Count one finished request (status 499: the client went away)."""
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._metrics.requests.labels(self.model, str(status))
            self._by_status[status] = counter
        counter.inc()
        self.duration.observe(seconds)
        if prompt:
            self.prompt_tokens.inc(prompt)
        if completion:
            self.completion_tokens.inc(completion)


class GatewayMetrics:
    """Every metric the gateway exports under the `llmhost_` prefix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "llmhost_requests",
            "Requests finished, by model and HTTP status.",
            ["model", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "llmhost_request_duration_seconds",
            "Time from request to last byte.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmhost_time_to_first_token_seconds",
            "Time from request to first streamed chunk.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "llmhost_tokens",
            "Tokens processed, by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=r,
        )
        self.inflight = Gauge(
            "llmhost_inflight_requests", "Requests in progress.", ["model"], registry=r
        )
        self.backend_up = Gauge(
            "llmhost_backend_up",
            "1 when a replica is ready, else 0.",
            ["model", "replica"],
            registry=r,
        )

        self.replicas = Gauge(
            "llmhost_replicas", "Replicas the scaler runs, by model.", ["model"], registry=r
        )
        self.desired_replicas = Gauge(
            "llmhost_desired_replicas",
            "Replicas the autoscaler wants, by model.",
            ["model"],
            registry=r,
        )
        self.queued = Gauge(
            "llmhost_queued_requests",
            "Requests waiting for a replica, by model.",
            ["model"],
            registry=r,
        )
        self.tenant_tokens = Gauge(
            "llmhost_tenant_tokens_month",
            "Tokens a tenant used this calendar month (UTC).",
            ["tenant"],
            registry=r,
        )
        self.budget_used = Gauge(
            "llmhost_tenant_budget_used_ratio",
            "Share of its monthly token budget a tenant used.",
            ["tenant"],
            registry=r,
        )
        self.audit_dropped = Counter(
            "llmhost_audit_dropped",
            "Audit records dropped, by reason (refused by the store, queue full, jsonl, shutdown).",
            ["reason"],
            registry=r,
        )
        self.scale_events = Counter(
            "llmhost_scale_events",
            "Scaling decisions carried out, by model and direction.",
            ["model", "direction"],
            registry=r,
        )

    def for_model(self, model: str) -> ModelMetrics:
        """Resolved children for one model."""
        return ModelMetrics(self, model)

    def set_backend(self, model: str, replica: str, up: bool | None) -> None:
        """Mark a replica up or down; None removes its series (replica gone)."""
        if up is None:
            with contextlib.suppress(KeyError):
                self.backend_up.remove(model, replica)
        else:
            self.backend_up.labels(model, replica).set(1 if up else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)

    def described(self) -> list[tuple[str, str, tuple[str, ...], str]]:
        """(exposed name, type, labels, help) of every metric: the metrics reference's rows."""
        rows = []
        for metric in vars(self).values():
            if isinstance(metric, Counter | Gauge | Histogram):
                kind = metric._type
                name = metric._name + ("_total" if kind == "counter" else "")
                labels = tuple(metric._labelnames)
                rows.append((name, kind, labels, metric._documentation))
        return rows


def reference_markdown() -> str:
    """docs/metrics.md, generated: every Prometheus metric and OpenTelemetry instrument."""
    from llmhost.gateway.telemetry import INSTRUMENTS, SEMCONV_VERSION

    lines = [
        "# Metrics reference",
        "",
        "Generated by `python -m llmhost.gateway.metrics > docs/metrics.md` from the code that",
        "registers them (a test fails when this page is stale).",
        "",
        "## Prometheus (`GET /metrics`)",
        "",
        "Tenant series (`llmhost_tenant_*`) appear only with `server.metrics_tenant_labels: true`.",
        "",
        "| name | type | labels | meaning |",
        "|---|---|---|---|",
    ]
    for name, kind, labels, help_text in GatewayMetrics().described():
        lines.append(f"| `{name}` | {kind} | {', '.join(labels) or '-'} | {help_text} |")
    lines += [
        "",
        f"## OpenTelemetry (`server.otel`; GenAI semantic conventions {SEMCONV_VERSION})",
        "",
        "| name | instrument | unit | attributes | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, unit, attributes, meaning in INSTRUMENTS:
        lines.append(f"| `{name}` | histogram | `{unit}` | {', '.join(attributes)} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
