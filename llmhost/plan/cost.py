"""Cost model: what a configuration costs per hour, per month and per million tokens, and where
it breaks even against hosted APIs.

- hourly = GPUs x $/GPU-hour (spot when allowed and priced, else on-demand)
- monthly (24/7) = hourly x 730 + control plane $/h x 730 + weights volume GB x $/GB-month
- monthly (scale to zero, N active hours) = hourly x N + control plane x 730 + storage
- $ per 1M output tokens = hourly / (aggregate output tokens/s x utilisation x 3600) x 1e6
- hosted $/day = (input tokens x input price + output tokens x output price) / 1e6
- break-even tokens/day = self-hosted $/day / hosted blended $ per token
"""

from __future__ import annotations

from dataclasses import dataclass

from llmhost.plan.catalog import Catalog, GpuPrice, HostedApi
from llmhost.plan.types import HostedComparison

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
# The weights volume holds the weights plus room for a second revision during upgrades.
VOLUME_HEADROOM = 1.2


@dataclass(frozen=True)
class PriceChoice:
    """The price a candidate is costed at, and where it comes from."""

    provider: str
    per_gpu_hour: float
    spot: bool
    source: str
    as_of: str


def choose_price(
    catalog: Catalog, gpu: str, spot: bool, provider: str | None = None
) -> PriceChoice | None:
    """The cheapest listed price for `gpu` (spot if allowed and listed), optionally one provider."""
    prices: list[GpuPrice] = catalog.prices_for(gpu)
    if provider:
        prices = [p for p in prices if p.provider == provider]
    options = []
    for p in prices:
        options.append(PriceChoice(p.provider, p.on_demand, False, p.source, p.as_of))
        if spot and p.spot is not None:
            options.append(PriceChoice(p.provider, p.spot, True, p.source, p.as_of))
    return min(options, key=lambda o: o.per_gpu_hour, default=None)


@dataclass(frozen=True)
class CostBreakdown:
    """Hourly and monthly cost of a deployment of `gpus` GPUs."""

    hourly: float
    monthly_24x7: float
    monthly: float
    control_plane_monthly: float
    storage_monthly: float


def deployment_cost(
    catalog: Catalog,
    price: PriceChoice,
    gpus: int,
    weights_bytes: int,
    active_hours: float | None,
) -> CostBreakdown:
    """GPU, control-plane and storage cost; `active_hours` models scale to zero."""
    hourly = gpus * price.per_gpu_hour
    fee = catalog.control_plane_hourly.get(price.provider)
    control = (fee.price if fee else 0.0) * HOURS_PER_MONTH
    store = catalog.storage_gb_month.get(price.provider)
    storage = (store.price if store else 0.0) * weights_bytes / 1e9 * VOLUME_HEADROOM
    monthly_24x7 = hourly * HOURS_PER_MONTH + control + storage
    hours = HOURS_PER_MONTH if active_hours is None else min(active_hours, HOURS_PER_MONTH)
    return CostBreakdown(
        hourly=hourly,
        monthly_24x7=monthly_24x7,
        monthly=hourly * hours + control + storage,
        control_plane_monthly=control,
        storage_monthly=storage,
    )


def cost_per_million_output_tokens(
    hourly: float, aggregate_tokens_per_s: float, utilization: float
) -> float | None:
    """Dollars per 1M generated tokens when the hardware is busy `utilization` of the time."""
    produced = aggregate_tokens_per_s * utilization * 3600
    return hourly / produced * 1e6 if produced > 0 else None


def hosted_cost_per_day(api: HostedApi, input_per_day: float, output_per_day: float) -> float:
    """What a hosted API charges for one day of this traffic."""
    return (input_per_day * api.input + output_per_day * api.output) / 1e6


def compare_hosted(
    catalog: Catalog,
    model_id: str,
    monthly_cost: float,
    input_share: float,
    tokens_per_day: float | None,
) -> list[HostedComparison]:
    """Each hosted API's cost for the traffic and the traffic at which self-hosting breaks even."""
    rows = []
    for api in catalog.hosted_for(model_id):
        blended = (input_share * api.input + (1 - input_share) * api.output) / 1e6
        per_day = None
        if tokens_per_day is not None:
            per_day = hosted_cost_per_day(
                api, tokens_per_day * input_share, tokens_per_day * (1 - input_share)
            )
        rows.append(
            HostedComparison(
                provider=api.provider,
                api_model=api.api_model,
                same_model=api.model == model_id,
                input_per_million_usd=api.input,
                output_per_million_usd=api.output,
                cost_per_day_usd=per_day,
                break_even_tokens_per_day=monthly_cost / DAYS_PER_MONTH / blended
                if blended > 0
                else None,
                source=api.source,
                as_of=api.as_of,
            )
        )
    return rows
