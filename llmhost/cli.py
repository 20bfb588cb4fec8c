"""The `llmhost` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmhost.errors import LlmhostError, UsageError

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
) -> None:
    """Serve the configured models behind the OpenAI-compatible gateway (Ctrl-C stops all)."""
    import logging

    from llmhost.config import embedded_model, load_config
    from llmhost.gateway.server import banner, serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_config(config)
        overrides: dict[str, object] = {}
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        if overrides:
            settings = settings.model_copy(
                update={"server": settings.server.model_copy(update=overrides)}
            )
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


def main() -> None:
    """Entry point for `python -m llmhost`."""
    app()
