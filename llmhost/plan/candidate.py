"""What every candidate needs whatever its engine: the option being evaluated, an empty
(non-fitting) candidate, traffic in requests/s, and its price."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmhost.plan import cost
from llmhost.plan.architecture import ModelSpec
from llmhost.plan.catalog import GIB, Catalog, EngineProfile, Gpu, WeightFormat
from llmhost.plan.catalog.price_rows import TIER_LABELS
from llmhost.plan.sources import ModelSource
from llmhost.plan.types import Candidate, NodePrice, Requirements


def busy_at_peak(req: Requirements) -> float:
    """The most a replica may be busy at peak: 1 - headroom (--headroom, default 30%)."""
    return 1.0 - req.headroom


def replicas_for(rps: float, capacity: float, req: Requirements) -> int:
    """Replicas that carry `rps` at peak with the headroom kept free."""
    return max(1, math.ceil(rps / (capacity * busy_at_peak(req))))


@dataclass(frozen=True)
class Option:
    """One GPU type and weight format to evaluate for a model and its requirements."""

    source: ModelSource
    gpu: Gpu
    fmt: WeightFormat
    engine: EngineProfile
    catalog: Catalog
    req: Requirements

    def parts(
        self,
    ) -> tuple[ModelSource, Gpu, WeightFormat, EngineProfile, Catalog, Requirements]:
        """The fields in declaration order, for unpacking."""
        return self.source, self.gpu, self.fmt, self.engine, self.catalog, self.req


def gib(n: float) -> str:
    """Bytes as GiB with one decimal, for reasons."""
    return f"{n / GIB:.1f} GiB"


def empty(gpu: Gpu, fmt: WeightFormat, engine: str, weights: int, reasons: list[str]) -> Candidate:
    """A candidate that does not run (does not fit, or the engine cannot run the format)."""
    return Candidate(
        gpu=gpu.id,
        gpu_count=0,
        quantization=fmt.id,
        engine=engine,
        fits=False,
        weights_bytes=weights,
        max_kv_tokens=0,
        max_concurrent_sequences=0,
        decode_tokens_per_s_single=0.0,
        decode_tokens_per_s_aggregate=0.0,
        hourly_cost_usd=None,
        monthly_cost_usd=None,
        cost_per_million_output_tokens_usd=None,
        reasons=reasons,
        meets_targets=False,
    )


def required_rps(req: Requirements) -> float:
    """Peak requests/s the deployment must serve (from req/s, or tokens/day x peak-to-mean)."""
    if req.requests_per_s is not None:
        return req.requests_per_s
    if req.tokens_per_day:
        per_request = req.prompt_tokens + req.output_tokens
        return req.tokens_per_day / per_request / 86400 * req.peak_to_mean
    return 0.0


# RAM a CPU VM needs beyond the model's buffers: the OS and the engine process.
CPU_OS_GIB = 2.0


def cpu_ram_gib(cand: Candidate) -> float:
    """RAM a CPU candidate needs in its VM (0 for GPUs): weights, buffers, the OS, and KV for
    the sequences it runs at its operating point (not every slot this host could hold)."""
    if cand.gpu != "cpu" or cand.memory is None:
        return 0.0
    m = cand.memory
    kv = m.per_sequence_kv_bytes * max(1, cand.operating_batch)
    return (m.weights_bytes + kv + m.overhead_bytes) / GIB + CPU_OS_GIB


def price(cand: Candidate, catalog: Catalog, req: Requirements, spec: ModelSpec) -> None:
    """Fill the candidate's provider, hourly/monthly cost, $ per 1M tokens and hosted rows."""
    tiers = cost.allowed_tiers(req.spot, req.price_tiers)
    choice = cost.choose_price(
        catalog,
        cand.gpu,
        req.spot,
        req.provider,
        tiers,
        gpus_per_replica=cand.gpus_per_replica,
        tp=cand.tensor_parallel,
        replicas=cand.replicas,
        min_ram_gib=cpu_ram_gib(cand),
    )
    if choice is None:
        where = f" from {req.provider}" if req.provider else ""
        if cand.gpu == "cpu":
            where += f" with {cpu_ram_gib(cand):.0f} GiB RAM"
        named = ", ".join(TIER_LABELS[t] for t in tiers)
        listed = [
            row
            for row in catalog.prices_for(cand.gpu, tiers)
            if not req.provider or row.provider == req.provider
        ]
        largest = max((row.gpus for row in listed), default=0)
        if 0 < largest < cand.tensor_parallel:
            # Priced, but tensor parallelism stays inside one node and no listed node is that big.
            cand.reasons.append(
                f"no {cand.gpu} node{where} in the catalog holds TP {cand.tensor_parallel} "
                f"(the largest has {largest} GPUs; {named})"
            )
        else:
            cand.reasons.append(f"no price for {cand.gpu}{where} in the catalog ({named})")
        return
    if req.spot and not choice.spot and not req.price_tiers:
        cand.reasons.append(f"no spot or community price listed for {cand.gpu}; on-demand")
    costs = cost.deployment_cost(catalog, choice, cand.weights_bytes, req.active_hours)
    cand.provider, cand.spot = choice.provider, choice.spot
    cand.price_per_gpu_hour_usd = choice.per_gpu_hour
    cand.node_price = NodePrice(
        provider=choice.provider,
        tier=choice.tier,
        instance=choice.instance,
        gpus_per_node=choice.node_gpus,
        vcpu=choice.vcpu,
        ram_gib=choice.ram_gib,
        node_hourly_usd=choice.node_hourly,
        nodes=choice.nodes,
        source=choice.source,
        as_of=choice.as_of,
    )
    cand.hourly_cost_usd = round(costs.hourly, 4)
    cand.monthly_cost_usd = round(costs.monthly, 2)
    cand.monthly_cost_24x7_usd = round(costs.monthly_24x7, 2)
    cand.control_plane_monthly_usd = round(costs.control_plane_monthly, 2)
    cand.storage_monthly_usd = round(costs.storage_monthly, 2)
    per_m = cost.cost_per_million_output_tokens(
        costs.hourly / cand.replicas, cand.decode_tokens_per_s_aggregate, req.utilization
    )
    cand.cost_per_million_output_tokens_usd = round(per_m, 4) if per_m is not None else None
    input_share = req.prompt_tokens / (req.prompt_tokens + req.output_tokens)
    cand.hosted = cost.compare_hosted(
        catalog, spec.id, costs.monthly, input_share, req.tokens_per_day
    )
