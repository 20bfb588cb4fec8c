"""Cost model: what a configuration costs per hour, per month and per million tokens, and where
it breaks even against hosted APIs.

- hourly = nodes x $/node-hour: each price row is a whole node (GPUs + VM) in one tier
  (on_demand, spot, community, reserved_1y, reserved_3y); the cheapest allowed row that holds
  the replicas wins
- monthly (24/7) = hourly x 730 + control plane $/h x 730 + weights volume GB x $/GB-month
- monthly (scale to zero, N active hours) = hourly x N + control plane x 730 + storage
- $ per 1M output tokens = hourly / (aggregate output tokens/s x utilisation x 3600) x 1e6
- hosted $/day = (input tokens x input price + output tokens x output price) / 1e6
- break-even tokens/day = self-hosted $/day / hosted blended $ per token
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.errors import UnknownChoiceError
from llmhost.plan.catalog import Catalog, HostedApi
from llmhost.plan.catalog.price_rows import INTERRUPTIBLE_TIERS, TIERS, GpuPrice
from llmhost.plan.types import HostedComparison

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
# The weights volume holds the weights plus room for a second revision during upgrades.
VOLUME_HEADROOM = 1.2


@dataclass(frozen=True)
class PriceChoice:
    """The node price a candidate is costed at, its tier, and where it comes from."""

    provider: str
    per_gpu_hour: float
    tier: str
    source: str
    as_of: str
    instance: str = ""
    node_gpus: int = 1
    vcpu: int = 0
    ram_gib: float = 0.0
    node_hourly: float = 0.0
    nodes: int = 0  # nodes the deployment needs at this price (0: not sized for a shape)

    @property
    def spot(self) -> bool:
        """True when the capacity can be reclaimed at short notice (spot or community)."""
        return self.tier in INTERRUPTIBLE_TIERS

    @property
    def hourly(self) -> float:
        """The whole deployment's $/hour at this price: nodes x node price."""
        return self.nodes * self.node_hourly


def allowed_tiers(spot: bool, tiers: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The price tiers a plan may use: the ones named, else on-demand (+ spot and community)."""
    if tiers:
        unknown = [t for t in tiers if t not in TIERS]
        if unknown:
            raise UnknownChoiceError("price tier", unknown[0], TIERS)
        return tuple(tiers)
    return ("on_demand", *INTERRUPTIBLE_TIERS) if spot else ("on_demand",)


def nodes_needed(node_gpus: int, gpus_per_replica: int, tp: int, replicas: int) -> int | None:
    """Nodes of `node_gpus` GPUs that hold `replicas` replicas of `gpus_per_replica` GPUs.

    Replicas smaller than a node share it; a replica larger than a node spans nodes by pipeline
    stage, so each node must hold at least one tensor-parallel group (None when it cannot).
    """
    if gpus_per_replica <= node_gpus:
        return math.ceil(replicas / (node_gpus // gpus_per_replica))
    if tp > node_gpus:
        return None
    stages = gpus_per_replica // tp
    return replicas * math.ceil(stages / (node_gpus // tp))


def choose_price(
    catalog: Catalog,
    gpu: str,
    spot: bool,
    provider: str | None = None,
    tiers: list[str] | tuple[str, ...] | None = None,
    gpus_per_replica: int = 1,
    tp: int = 1,
    replicas: int = 1,
    min_ram_gib: float = 0.0,
) -> PriceChoice | None:
    """The cheapest listed node price that holds the deployment, in the allowed tiers.

    Each row is a whole node (GPUs + VM); the deployment pays for whole nodes, so a 1-GPU
    replica on an 8-GPU-only offer pays for the node.
    """
    allowed = allowed_tiers(spot, tiers)
    rows: list[GpuPrice] = catalog.prices_for(gpu, allowed)
    if provider:
        rows = [p for p in rows if p.provider == provider]
    rows = [p for p in rows if p.ram_gib >= min_ram_gib]
    options = []
    for p in rows:
        nodes = nodes_needed(p.gpus, gpus_per_replica, tp, replicas)
        if nodes is None:
            continue
        options.append(
            PriceChoice(
                provider=p.provider,
                per_gpu_hour=p.per_gpu_hour,
                tier=p.tier,
                source=p.source,
                as_of=p.as_of,
                instance=p.instance,
                node_gpus=p.gpus,
                vcpu=p.vcpu,
                ram_gib=p.ram_gib,
                node_hourly=p.node_hourly,
                nodes=nodes,
            )
        )
    return min(options, key=lambda o: (o.hourly, o.per_gpu_hour), default=None)


@dataclass(frozen=True)
class CostBreakdown:
    """Hourly and monthly cost of a deployment on `nodes` nodes."""

    hourly: float
    monthly_24x7: float
    monthly: float
    control_plane_monthly: float
    storage_monthly: float


def deployment_cost(
    catalog: Catalog,
    price: PriceChoice,
    weights_bytes: int,
    active_hours: float | None,
) -> CostBreakdown:
    """Node, control-plane and storage cost; `active_hours` models scale to zero."""
    hourly = price.hourly
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


def flag_capacity(
    rows: list[HostedComparison], full_tokens_per_day: float, carry_share: float
) -> list[HostedComparison]:
    """Mark each break-even with the utilisation it needs and whether the fleet can reach it.

    `full_tokens_per_day` is what the fleet serves flat out all day; `carry_share` the mean busy
    share the traffic shape allows, (1 - headroom) / peak-to-mean: beyond that the peak no
    longer fits in the replicas.
    """
    carry = full_tokens_per_day * carry_share
    for row in rows:
        row.fleet_capacity_tokens_per_day = round(carry, 0)
        even = row.break_even_tokens_per_day
        if even is None or full_tokens_per_day <= 0:
            continue
        row.break_even_utilization = round(even / full_tokens_per_day, 4)
        row.beyond_capacity = even > carry
    return rows
