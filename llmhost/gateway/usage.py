"""Usage per tenant and model from the audit ledger, priced at hosted-API list prices.

The hosted prices are the catalog's (`hosted_apis.yaml`): APIs serving the same open model, plus
the closed reference models listed for `any`. The self-hosted cost is what the deployment costs
per hour over the same period, when the caller says what that is.

Every request is audited, including those refused before they named a model (a bad key, a body
that is not JSON): those are counted apart (`unrouted`), not shown as a tenant-less, model-less
row. A row without a tenant is traffic through an open gateway (no key).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from llmhost.gateway.store import SqlStore, UsageRow
from llmhost.plan.catalog import Catalog


@dataclass(frozen=True)
class HostedCost:
    """What the same tokens would have cost at one hosted API."""

    provider: str
    api_model: str
    usd: float


@dataclass(frozen=True)
class UsageReport:
    """The usage rows, their hosted-API costs, and the self-hosted cost of the period."""

    since: float
    until: float
    rows: list[UsageRow]
    hosted: dict[str, list[HostedCost]]  # by model
    self_hosted_usd: float | None
    unrouted: int = 0  # requests refused before they named a model (bad key, bad body)

    def to_dict(self) -> dict[str, object]:
        """Plain data for -o json / yaml."""
        return {
            "since": self.since,
            "until": self.until,
            "rows": [asdict(r) for r in self.rows],
            "unrouted_requests": self.unrouted,
            "hosted_cost_usd": {m: [asdict(c) for c in cs] for m, cs in self.hosted.items()},
            "self_hosted_usd": self.self_hosted_usd,
        }


def usage_report(
    store: SqlStore,
    catalog: Catalog,
    tenant: str | None = None,
    since: float = 0.0,
    hourly_usd: float | None = None,
) -> UsageReport:
    """Totals since `since` (all tenants, or one), priced."""
    every = store.usage(tenant, since)
    rows = [r for r in every if r.model]
    unrouted = sum(r.requests for r in every if not r.model)
    until = time.time()
    hosted: dict[str, list[HostedCost]] = {}
    for model in sorted({r.model for r in rows}):
        prompt = sum(r.prompt_tokens for r in rows if r.model == model)
        completion = sum(r.completion_tokens for r in rows if r.model == model)
        hosted[model] = [
            HostedCost(
                api.provider,
                api.api_model,
                round((prompt * api.input + completion * api.output) / 1e6, 6),
            )
            for api in catalog.hosted_for(model)
        ]
    start = max(since, min((r.first_ts for r in rows), default=until))
    self_hosted = None
    if hourly_usd is not None:
        self_hosted = round(hourly_usd * max(0.0, until - start) / 3600, 6)
    return UsageReport(since, until, rows, hosted, self_hosted, unrouted)


def print_usage(report: UsageReport) -> None:
    """The report as a terminal table, hosted prices underneath."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console = console if console.is_terminal else Console(width=160)
    if not report.rows:
        console.print(f"no requests to a model {_period(report)}{_unrouted(report)}")
        return
    table = Table(title="Usage")
    for column in ("tenant", "model", "requests", "errors", "prompt tokens", "output tokens"):
        table.add_column(column, justify="left" if column in ("tenant", "model") else "right")
    for r in report.rows:
        table.add_row(
            r.tenant or "(no key)",
            r.model,
            f"{r.requests:,}",
            f"{r.errors:,}",
            f"{r.prompt_tokens:,}",
            f"{r.completion_tokens:,}",
        )
    console.print(table)
    for model, costs in report.hosted.items():
        priced = ", ".join(f"{c.provider}/{c.api_model} ${c.usd:,.4f}" for c in costs)
        console.print(f"{model} at hosted prices: {priced or 'no hosted price in the catalog'}")
    if report.self_hosted_usd is not None:
        console.print(f"self-hosted over the same period: ${report.self_hosted_usd:,.4f}")
    if report.unrouted:
        console.print(_unrouted(report).removeprefix("; "))


def _period(report: UsageReport) -> str:
    from datetime import UTC, datetime

    if not report.since:
        return "recorded"
    return "since " + datetime.fromtimestamp(report.since, UTC).isoformat(timespec="seconds")


def _unrouted(report: UsageReport) -> str:
    if not report.unrouted:
        return ""
    return (
        f"; {report.unrouted:,} request(s) refused before naming a model "
        "(bad key or body; see `llmhost audit`)"
    )
