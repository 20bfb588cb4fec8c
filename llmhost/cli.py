"""The `llmhost` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from llmhost.errors import LlmhostError, UsageError

if TYPE_CHECKING:
    from llmhost.gateway.store import SqlStore

app = typer.Typer(
    help="Plan, serve, deploy and measure self-hosted open LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Plan, serve, deploy and measure self-hosted open LLMs."""


def fail(exc: LlmhostError) -> typer.Exit:
    """Print a user error on one line and return the Exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip().lower() for raw in values or [] for v in raw.split(",") if v.strip()]


@app.command()
def plan(
    model: Annotated[str, typer.Argument(help="Catalog id, config.json path or GGUF path.")],
    gpu: Annotated[
        list[str] | None, typer.Option(help="GPU id(s) to consider (default: all).")
    ] = None,
    quant: Annotated[
        list[str] | None, typer.Option(help="Weight format(s) to consider (default: all).")
    ] = None,
    context: Annotated[int | None, typer.Option(help="Max tokens per sequence.")] = None,
    tokens_per_day: Annotated[
        float | None, typer.Option(help="Traffic, input + output tokens per day.")
    ] = None,
    requests_per_s: Annotated[
        float | None, typer.Option("--requests-per-s", help="Traffic at peak, requests/s.")
    ] = None,
    prompt_tokens: Annotated[int, typer.Option(help="Typical prompt length.")] = 1024,
    output_tokens: Annotated[int, typer.Option(help="Typical output length.")] = 256,
    ttft: Annotated[float | None, typer.Option(help="TTFT target, seconds.")] = None,
    min_tokens_per_s: Annotated[
        float, typer.Option(help="Per-user decode speed target, tokens/s.")
    ] = 0.0,
    min_precision: Annotated[
        str | None, typer.Option(help="Lowest acceptable weight format, e.g. fp8.")
    ] = None,
    spot: Annotated[bool, typer.Option(help="Allow spot/preemptible GPUs.")] = False,
    active_hours: Annotated[
        float | None, typer.Option(help="Hours/month a replica runs (scale to zero).")
    ] = None,
    utilization: Annotated[float, typer.Option(help="Busy share for $ per 1M tokens (0-1).")] = 0.5,
    provider: Annotated[str | None, typer.Option(help="Only this provider's prices.")] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Your own price file (YAML, as prices.yaml).")
    ] = None,
    gpu_count: Annotated[
        int | None, typer.Option(help="Use exactly this many GPUs per replica.")
    ] = None,
    measure_host: Annotated[
        bool, typer.Option(help="Measure this host's bandwidth and FLOP/s for --gpu cpu.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown report.")] = False,
) -> None:
    """Which GPU, how many, which format and engine, what it costs: or why it does not fit."""
    from llmhost.plan import plan_for

    try:
        if as_json and markdown:
            raise UsageError("choose one of --json and --markdown")
        result = plan_for(
            model,
            gpus=_split(gpu),
            quantizations=_split(quant),
            context=context,
            tokens_per_day=tokens_per_day,
            requests_per_s=requests_per_s,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            ttft_s=ttft,
            min_user_tokens_per_s=min_tokens_per_s,
            min_precision=min_precision,
            spot=spot,
            active_hours=active_hours,
            utilization=utilization,
            provider=provider,
            prices=prices,
            gpu_count=gpu_count,
            measure_host=measure_host,
        )
    except LlmhostError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
    elif markdown:
        from llmhost.plan.report import plan_markdown

        sys.stdout.write(plan_markdown(result))
    else:
        from llmhost.plan.report import print_plan

        console = Console()
        print_plan(result, console if console.is_terminal else Console(width=160))


@app.command()
def up(
    config: Annotated[
        Path | None, typer.Option(help="llmhost.yaml (default: $LLMHOST_CONFIG or ./llmhost.yaml).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port.")] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Serve this GGUF (path or hf://owner/repo/file) instead of the config."),
    ] = None,
    replicas: Annotated[
        int | None, typer.Option(help="Replicas of --model (or of the embedded model).")
    ] = None,
    open_access: Annotated[
        bool,
        typer.Option("--open", help="Serve without API keys (loopback only; said loudly)."),
    ] = False,
    audit_retention_days: Annotated[
        int | None, typer.Option(help="Delete audit records older than this (default 90).")
    ] = None,
) -> None:
    """Serve the configured models behind the OpenAI-compatible gateway (Ctrl-C stops all)."""
    import logging

    from llmhost.config import embedded_model, load_config, with_server
    from llmhost.gateway.server import banner, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_config(config)
        overrides: dict[str, object] = {}
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        if open_access:
            overrides["auth"] = "open"
        if audit_retention_days is not None:
            overrides["audit_retention_days"] = audit_retention_days
        if overrides:
            settings = with_server(settings, **overrides)
        if model is not None or replicas is not None:
            if replicas is not None and replicas < 1:
                raise UsageError("--replicas must be at least 1")
            base = embedded_model(replicas or 1)
            if model is not None:
                name = Path(model.split("@")[0]).stem
                base = base.model_copy(
                    update={"name": name, "aliases": ("default",), "weights": model}
                )
            settings = settings.model_copy(update={"models": (base,)})
        serve(settings, on_ready=lambda url: typer.echo(banner(url, settings)))
    except LlmhostError as exc:
        raise fail(exc) from None


keys_app = typer.Typer(help="Create, list, show and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="llmhost.yaml (for server.store_url).")
]
StoreOption = Annotated[
    str | None, typer.Option("--store", help="Store URL (sqlite:///PATH or postgresql://...).")
]


def _store(config: Path | None, store: str | None) -> SqlStore:
    from llmhost.config import load_config
    from llmhost.gateway.store import open_store

    return open_store(store or load_config(config).server.store_url)


def _moment(text: str, option: str, future: bool) -> float:
    """Unix time for --expires/--since: ISO 8601 (UTC if no zone), or a span (30d, 12h, 5m)
    counted forward from now (`future`) or back."""
    import re
    import time
    from datetime import UTC, datetime

    span = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if span:
        seconds = int(span[1]) * {"d": 86400, "h": 3600, "m": 60}[span[2]]
        return time.time() + (seconds if future else -seconds)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} '{text}': use a date like 2027-01-31 or a span like 30d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Team or customer the key belongs to.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (prompt + output).")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Requests at once.")] = None,
    monthly_tokens: Annotated[
        int | None, typer.Option(help="The tenant's token budget per calendar month.")
    ] = None,
    models: Annotated[str | None, typer.Option(help="Allowed models, comma-separated.")] = None,
    expires: Annotated[
        str | None, typer.Option(help="Expiry: a date (2027-01-31) or a span (30d).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Print only the key.")] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Create a key. Its secret is printed once; only a hash is stored."""
    from llmhost.gateway.keys import create_key

    try:
        expires_at = _moment(expires, "--expires", future=True) if expires else None
        db = _store(config, store)
        allowed = [m.strip() for m in models.split(",") if m.strip()] if models else None
        secret, record = create_key(
            db, tenant, name=name, rpm=rpm, tpm=tpm, max_concurrent=max_concurrent,
            monthly_tokens=monthly_tokens, models=allowed, expires_at=expires_at,
        )  # fmt: skip
    except LlmhostError as exc:
        raise fail(exc) from None
    if quiet:
        typer.echo(secret)
        return
    typer.echo(f"created key {record.prefix} for tenant {record.tenant}")
    typer.echo(f"  {secret}")
    typer.echo("  (shown once: llmhost keeps only its hash)")


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List keys by prefix, with their tenant, limits and state (never a secret)."""
    import orjson

    try:
        records = _store(config, store).keys(tenant)
    except LlmhostError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(orjson.dumps([r.to_dict() for r in records]).decode())
        return
    for r in records:
        state = "revoked" if r.revoked_at else "active"
        pairs = (("rpm", r.rpm), ("tpm", r.tpm), ("concurrent", r.max_concurrent),
                 ("monthly", r.monthly_tokens))  # fmt: skip
        limits = " ".join(f"{k}={v}" for k, v in pairs if v)
        models = ",".join(r.models) if r.models else "all models"
        typer.echo(f"{r.prefix}  {r.tenant:20} {state:8} {models}  {limits}")


@keys_app.command("show")
def keys_show(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (llmh-xxxxxxxxxx).")],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Show one key's settings as JSON."""
    import orjson

    try:
        record = _store(config, store).key(prefix)
        if record is None:
            raise UsageError(f"no key with prefix '{prefix}'")
    except LlmhostError as exc:
        raise fail(exc) from None
    typer.echo(orjson.dumps(record.to_dict(), option=orjson.OPT_INDENT_2).decode())


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (llmh-xxxxxxxxxx).")],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Revoke a key (gateways stop accepting it within 5 s)."""
    try:
        if not _store(config, store).revoke(prefix):
            raise UsageError(f"no active key with prefix '{prefix}'")
    except LlmhostError as exc:
        raise fail(exc) from None
    typer.echo(f"revoked {prefix}")


@app.command()
def usage(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From a date (2026-11-01) or a span back (7d).")
    ] = None,
    hourly_usd: Annotated[
        float | None, typer.Option(help="What the deployment costs per hour, for comparison.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Tokens, requests and errors per tenant and model, priced at hosted-API list prices."""
    import orjson

    from llmhost.gateway.usage import usage_report
    from llmhost.plan.catalog import load_catalog

    try:
        start = _moment(since, "--since", future=False) if since else 0.0
        report = usage_report(_store(config, store), load_catalog(), tenant, start, hourly_usd)
    except LlmhostError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(orjson.dumps(report.to_dict()).decode())
        return
    from llmhost.gateway.usage import print_usage

    print_usage(report)


def main() -> None:
    """Entry point for `python -m llmhost`."""
    app()
