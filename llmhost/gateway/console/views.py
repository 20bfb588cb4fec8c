"""What the console shows, read through the code the CLI and the admin API use: the gateway's
health view, the store, `usage.usage_report` with the catalog's hosted-API prices."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from llmhost.errors import UsageError
from llmhost.gateway.limits import month_start
from llmhost.gateway.routes import Route
from llmhost.gateway.store import SqlStore, UsageRow
from llmhost.gateway.store.records import AuditRecord
from llmhost.gateway.usage import UsageReport, usage_report
from llmhost.plan.catalog import load_catalog

PERIODS = ("day", "month", "all")


def overview(
    health: dict[str, Any],
    routes: Sequence[Route],
    recent_figures: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per model: replicas by state and queue depth (the gateway's health view), requests in
    flight, whether the model sits at zero replicas waiting to wake, and the `recent` rates."""
    models = health.get("models", {})
    figures = recent_figures or {}
    data = []
    for route in routes:
        view = models.get(route.name, {"replicas": {}, "queued": 0})
        replicas = view["replicas"]
        rates = figures.get(route.name, {})
        data.append(
            {
                "model": route.name,
                "ready": replicas.get("ready", 0),
                "starting": replicas.get("starting", 0),
                "ejected": replicas.get("ejected", 0),
                "draining": replicas.get("draining", 0),
                "down": replicas.get("down", 0),
                "queued": view["queued"],
                "inflight": sum(r.inflight for r in route.replica_set.replicas),
                "at_zero": route.config.bounds[0] == 0 and not route.replica_set.replicas,
                "tokens_per_s": rates.get("tokens_per_s", 0.0),
                "error_rate": rates.get("error_rate", 0.0),
                "ttft_p50_ms": rates.get("ttft_p50_ms"),
                "ttft_p95_ms": rates.get("ttft_p95_ms"),
            }
        )
    return {"ts": time.time(), "window_s": RECENT_S, "models": data}


RECENT_S = 300.0  # the overview's window for rates and latency


def recent(store: SqlStore, now: float, window_s: float = RECENT_S) -> dict[str, dict[str, Any]]:
    """Per model over the last `window_s`, from the request records: output tokens per second,
    the share of requests that failed (status 400 and up) and TTFT percentiles in ms (blocking:
    call it off the event loop)."""
    by_model: dict[str, list[AuditRecord]] = {}
    for record in store.audit(now - window_s):
        by_model.setdefault(record.model, []).append(record)
    figures = {}
    for name, records in by_model.items():
        ttfts = sorted(r.ttft_ms for r in records if r.ttft_ms is not None)
        figures[name] = {
            "requests": len(records),
            "tokens_per_s": round(sum(r.completion_tokens for r in records) / window_s, 3),
            "error_rate": round(sum(r.status >= 400 for r in records) / len(records), 4),
            "ttft_p50_ms": _percentile(ttfts, 0.50),
            "ttft_p95_ms": _percentile(ttfts, 0.95),
        }
    return figures


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 1)


def period_start(period: str, now: float | None = None) -> float:
    """The Unix time a usage period starts: today (UTC), this month (UTC), or ever."""
    now = time.time() if now is None else now
    if period == "day":
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day.timestamp()
    if period == "month":
        return month_start(now)
    return 0.0


@dataclass(frozen=True)
class UsageView:
    """The usage report of a period, with each tenant's budget where it has one."""

    period: str
    report: UsageReport
    budgets: dict[str, int | None]
    totals_only: bool  # viewers see totals per model, not tenants

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the console's chart script."""
        return {
            "period": self.period,
            **self.report.to_dict(),
            "budgets": self.budgets,
            "totals_only": self.totals_only,
        }


def usage(store: SqlStore, period: str, hourly_usd: float | None, totals_only: bool) -> UsageView:
    """The `llmhost usage` report for a period (blocking: call it off the event loop)."""
    report = usage_report(store, load_catalog(), None, period_start(period), hourly_usd)
    budgets: dict[str, int | None] = {}
    if totals_only:
        report = replace(report, rows=model_totals(report.rows))
    else:
        budgets = {t.name: t.monthly_tokens for t in store.tenants()}
    return UsageView(period, report, budgets, totals_only)


def model_totals(rows: Sequence[UsageRow]) -> list[UsageRow]:
    """Usage rows summed over tenants, per model (what a viewer may see)."""
    by_model: dict[str, UsageRow] = {}
    for row in rows:
        seen = by_model.get(row.model)
        if seen is None:
            by_model[row.model] = replace(row, tenant=None)
            continue
        by_model[row.model] = UsageRow(
            None,
            row.model,
            seen.requests + row.requests,
            seen.errors + row.errors,
            seen.prompt_tokens + row.prompt_tokens,
            seen.completion_tokens + row.completion_tokens,
            min(seen.first_ts, row.first_ts),
        )
    return list(by_model.values())


def usage_csv(view: UsageView) -> str:
    """The usage rows as CSV, with the cheapest hosted-API price of each model's tokens."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "tenant",
            "model",
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "hosted_provider",
            "hosted_api_model",
            "hosted_usd_for_model",
        ]
    )
    for row in view.report.rows:
        costs = view.report.hosted.get(row.model, [])
        cheapest = min(costs, key=lambda c: c.usd, default=None)
        writer.writerow(
            [
                _csv_safe(row.tenant or ""),
                _csv_safe(row.model),
                row.requests,
                row.errors,
                row.prompt_tokens,
                row.completion_tokens,
                cheapest.provider if cheapest else "",
                cheapest.api_model if cheapest else "",
                cheapest.usd if cheapest else "",
            ]
        )
    return out.getvalue()


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page narrows the trails to."""

    trail: str | None = None  # "request", "admin" or both
    tenant: str | None = None
    model: str | None = None
    status: int | None = None
    key: str | None = None  # a key prefix
    since: float = 0.0
    until: float | None = None


def audit(store: SqlStore, f: AuditFilter, limit: int = 500) -> list[dict[str, Any]]:
    """Both trails (request records and admin events), newest first, filtered; never content:
    the records hold none (blocking: call it off the event loop)."""
    rows: list[dict[str, Any]] = []
    if f.trail in (None, "request"):
        for r in store.audit(f.since):
            if f.tenant is not None and r.tenant != f.tenant:
                continue
            if f.model is not None and r.model != f.model:
                continue
            if f.status is not None and r.status != f.status:
                continue
            if f.key is not None and r.key_prefix != f.key:
                continue
            rows.append({"trail": "request", **asdict(r)})
    if f.trail in (None, "admin") and f.model is None and f.status is None:
        for e in store.admin_audit(f.since, None, f.tenant):
            if f.key is not None and f.key not in (e.target, e.actor):
                continue
            rows.append({"trail": "admin", **asdict(e)})
    if f.until is not None:
        until = f.until
        rows = [row for row in rows if row["ts"] <= until]
    rows.sort(key=lambda row: row["ts"], reverse=True)
    return rows[:limit]


@dataclass(frozen=True)
class BenchView:
    """A `llmhost bench --out` results.json: what was measured, the sweep table (the columns
    `llmhost bench` prints) and the per-level figures the charts draw."""

    title: str
    meta: dict[str, Any]
    columns: tuple[str, ...]
    rows: list[list[str]]
    levels: list[dict[str, Any]]  # {load, output_tokens_per_s, ttft_p50_ms, ttft_p99_ms}
    cost: list[str]


def bench(data: Any, source: str) -> BenchView:
    """The bench view of a results document, or a UsageError saying why it is not one."""
    from llmhost.bench.report import COLUMNS, summary_cells

    if not isinstance(data, dict) or not isinstance(data.get("levels"), list):
        raise UsageError(f"{source} is neither a plan nor a `llmhost bench --out` results.json")
    meta = data.get("meta") or {}
    rows: list[list[str]] = []
    levels: list[dict[str, Any]] = []
    try:
        for level in data["levels"]:
            s = level["summary"]
            rows.append(summary_cells(str(level["load"]), s))
            ttft = s["ttft_s"] or {}
            levels.append(
                {
                    "load": str(level["load"]),
                    "output_tokens_per_s": float(s["output_token_throughput"]),
                    "ttft_p50_ms": 1000 * float(ttft.get("median") or 0.0),
                    "ttft_p99_ms": 1000 * float(ttft.get("p99") or 0.0),
                }
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{source}: a load level lacks its summary ({exc})") from None
    cost = data.get("cost")
    lines: list[str] = []
    if isinstance(cost, dict):
        from llmhost.bench.report import cost_lines

        try:
            lines = cost_lines(cost)
        except (KeyError, TypeError, ValueError):
            lines = []
    title = f"{meta.get('model', 'a model')} at {meta.get('url', 'an endpoint')}"
    return BenchView(title, meta, COLUMNS, rows, levels, lines)
