"""What the measured throughput costs: $/hour of the hardware, $ per 1M output tokens at the
measured saturation throughput and at a stated utilisation, and where self-hosting breaks even
against the catalog's hosted APIs (the same formulas as the planner, llmhost/plan/cost.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from llmhost.errors import UsageError
from llmhost.plan import Plan
from llmhost.plan.catalog import Catalog
from llmhost.plan.cost import (
    HOURS_PER_MONTH,
    choose_price,
    compare_hosted,
    cost_per_million_output_tokens,
)


@dataclass(frozen=True)
class PricedHardware:
    """What the endpoint runs on and what that costs per hour, with where the price is from."""

    hourly_usd: float
    description: str
    price_source: str
    model: str | None = None  # catalog model id, for the hosted comparison
    gpu: str | None = None  # catalog GPU id; with engine and format, what calibration fits
    engine: str | None = None
    quantization: str | None = None


def hardware_from_plan(plan: Plan) -> PricedHardware:
    """The plan's recommended configuration and its price."""
    chosen = plan.recommendation
    if chosen is None or chosen.hourly_cost_usd is None:
        raise UsageError(f"the plan for {plan.model} has no priced recommendation")
    return PricedHardware(
        chosen.hourly_cost_usd / max(1, chosen.replicas),
        f"{chosen.gpu_count} x {chosen.gpu} ({chosen.engine}, {chosen.quantization})",
        f"plan ({chosen.provider or 'catalog'} price)",
        plan.model,
        chosen.gpu,
        chosen.engine,
        chosen.quantization,
    )


def hardware_from_catalog(
    catalog: Catalog,
    gpu: str,
    count: int,
    spot: bool,
    provider: str | None,
    hourly_usd: float | None,
    model: str | None,
    engine: str | None = None,
    quantization: str | None = None,
) -> PricedHardware:
    """`count` GPUs of type `gpu`, at `hourly_usd` per GPU or the catalog's cheapest price."""
    catalog.gpu(gpu)  # a clear error for an unknown GPU
    if count < 1:
        raise UsageError("--gpu-count must be at least 1")
    if hourly_usd is not None:
        return PricedHardware(
            hourly_usd * count,
            f"{count} x {gpu}",
            "given (--price)",
            model,
            gpu,
            engine,
            quantization,
        )
    price = choose_price(catalog, gpu, spot, provider)
    if price is None:
        raise UsageError(f"no price for GPU '{gpu}' in the catalog; give --price USD/GPU-hour")
    kind = "spot" if price.spot else "on-demand"
    return PricedHardware(
        price.per_gpu_hour * count,
        f"{count} x {gpu}",
        f"{price.provider} {kind}, {price.source} ({price.as_of})",
        model,
        gpu,
        engine,
        quantization,
    )


def cost_report(
    hardware: PricedHardware,
    catalog: Catalog,
    saturation_tokens_per_s: float,
    utilization: float,
    input_share: float,
) -> dict[str, Any]:
    """$/hour, $/1M output tokens at saturation and at `utilization`, hosted break-even."""
    if not 0 < utilization <= 1:
        raise UsageError("--utilization must be in (0, 1]")
    report: dict[str, Any] = {
        "hardware": hardware.description,
        "hourly_usd": hardware.hourly_usd,
        "price_source": hardware.price_source,
        "saturation_output_tokens_per_s": saturation_tokens_per_s,
        "usd_per_million_output_tokens_saturated": cost_per_million_output_tokens(
            hardware.hourly_usd, saturation_tokens_per_s, 1.0
        ),
        "utilization": utilization,
        "usd_per_million_output_tokens": cost_per_million_output_tokens(
            hardware.hourly_usd, saturation_tokens_per_s, utilization
        ),
        "hosted": [],
    }
    if hardware.model is not None:
        monthly = hardware.hourly_usd * HOURS_PER_MONTH
        report["hosted"] = [
            asdict(row)
            for row in compare_hosted(catalog, hardware.model, monthly, input_share, None)
        ]
    return report
