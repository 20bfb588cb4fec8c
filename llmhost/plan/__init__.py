"""The planner: from a model and its traffic to the cheapest correct way to serve it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from llmhost.errors import UsageError
from llmhost.plan.catalog import EngineProfile, load_catalog
from llmhost.plan.cost import allowed_tiers
from llmhost.plan.host import cpu_gpu
from llmhost.plan.recommend import build_plan
from llmhost.plan.sources import formats_to_plan, resolve_model
from llmhost.plan.types import OwnInputs, Plan, Requirements

DEFAULT_CONTEXT = 8192

__all__ = ["Plan", "Requirements", "plan_for"]


def plan_for(
    model: str,
    *,
    gpus: list[str] | None = None,
    quantizations: list[str] | None = None,
    context: int | None = None,
    tokens_per_day: float | None = None,
    requests_per_s: float | None = None,
    prompt_tokens: int = 1024,
    output_tokens: int = 256,
    ttft_s: float | None = None,
    min_user_tokens_per_s: float = 0.0,
    min_precision: str | None = None,
    spot: bool = False,
    active_hours: float | None = None,
    utilization: float = 0.5,
    provider: str | None = None,
    prices: Path | None = None,
    gpu_count: int | None = None,
    measure_host: bool = False,
    engine_profile: EngineProfile | None = None,
    concurrency: int | None = None,
    kv_cache_dtype: str = "auto",
    tensor_parallel: int | None = None,
    price_tiers: list[str] | None = None,
    headroom: float = 0.3,
    peak_to_mean: float = 2.0,
    growth_per_month: float = 0.0,
    horizon_months: int = 0,
    own: OwnInputs | None = None,
) -> Plan:
    """Plan `model` (catalog id, config.json or GGUF path, Hugging Face repo id) for the given
    traffic and targets."""
    catalog = load_catalog()
    if engine_profile is not None:  # calibrated factors replace the engine's defaults
        catalog = dataclasses.replace(
            catalog, engines={**catalog.engines, engine_profile.id: engine_profile}
        )
    if prices is not None:
        catalog = catalog.with_prices(prices)
    source = resolve_model(model, catalog)
    for name, value in (("prompt-tokens", prompt_tokens), ("output-tokens", output_tokens)):
        if value < 1:
            raise UsageError(f"--{name} must be at least 1")
    if concurrency is not None and concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if kv_cache_dtype not in ("auto", "fp8"):
        raise UsageError(f"--kv-cache-dtype {kv_cache_dtype}: use auto or fp8")
    if tensor_parallel is not None and tensor_parallel not in (1, 2, 4, 8):
        raise UsageError(f"--tp {tensor_parallel}: use 1, 2, 4 or 8")
    if not 0 < utilization <= 1:
        raise UsageError("--utilization must be in (0, 1]")
    if provider and provider not in {p.provider for p in catalog.gpu_prices}:
        from llmhost.errors import UnknownChoiceError

        raise UnknownChoiceError("provider", provider, {p.provider for p in catalog.gpu_prices})
    tiers = list(allowed_tiers(spot, price_tiers)) if price_tiers else []
    if not 0 <= headroom < 1:
        raise UsageError(f"--headroom {headroom:g}: use a share in [0, 1), e.g. 0.3")
    if peak_to_mean < 1:
        raise UsageError(f"--peak-to-mean {peak_to_mean:g}: the peak is at least the mean (>= 1)")
    if growth_per_month <= -1:
        raise UsageError(f"--growth {growth_per_month:g}: use a monthly share above -1, e.g. 0.1")
    if horizon_months < 0 or horizon_months > 120:
        raise UsageError(f"--horizon {horizon_months}: use 0 to 120 months")
    for q in quantizations or []:
        catalog.format(q)
    quantizations = formats_to_plan(source, quantizations)
    if min_precision:
        catalog.format(min_precision)
    ctx = context or min(DEFAULT_CONTEXT, source.spec.max_context)
    if ctx < 1:
        raise UsageError("--context must be at least 1")
    chosen = [catalog.gpu(g) for g in gpus] if gpus else list(catalog.gpus.values())
    chosen = [cpu_gpu(g, measure=measure_host) if g.is_cpu else g for g in chosen]
    req = Requirements(
        model=source.spec.id,
        context=ctx,
        prompt_tokens=min(prompt_tokens, ctx),
        output_tokens=min(output_tokens, ctx),
        tokens_per_day=tokens_per_day,
        requests_per_s=requests_per_s,
        ttft_s=ttft_s,
        min_user_tokens_per_s=min_user_tokens_per_s,
        min_precision=min_precision,
        spot=spot,
        active_hours=active_hours,
        utilization=utilization,
        provider=provider,
        gpus=[g.id for g in chosen],
        quantizations=list(quantizations or []),
        concurrency=concurrency,
        kv_cache_dtype=kv_cache_dtype,
        tensor_parallel=tensor_parallel,
        price_tiers=tiers,
        headroom=headroom,
        peak_to_mean=peak_to_mean,
        growth_per_month=growth_per_month,
        horizon_months=horizon_months,
        own=own,
    )
    asked = any(g.lower() == "cpu" for g in gpus or [])
    return build_plan(source, req, catalog, chosen, gpu_count, cpu_asked=asked)
