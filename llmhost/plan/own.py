"""Owning the engine servers against renting them on-demand or spot, over the servers' life.

- servers = whole servers of `gpus` GPUs that hold the replicas (as rented nodes are counted)
- depreciation = purchase / (years x 12) a month, straight line, no resale value
- power = rated kW x PUE x 730 h x $/kWh a month (rated draw: a conservative bound)
- operations = purchase x overhead share / 12 a month
- over the life: own = servers x purchase + months x (power + operations);
  rent = months x 730 x the cheapest allowed on-demand (or spot/community) nodes for the shape
"""

from __future__ import annotations

from llmhost.errors import UsageError
from llmhost.plan import cost
from llmhost.plan.catalog import Catalog
from llmhost.plan.types import Candidate, Ownership, OwnInputs, Requirements


def _rent_total(
    catalog: Catalog, cand: Candidate, req: Requirements, tiers: tuple[str, ...], months: float
) -> tuple[float | None, str]:
    choice = cost.choose_price(
        catalog,
        cand.gpu,
        False,
        req.provider,
        tiers,
        gpus_per_replica=cand.gpus_per_replica,
        tp=cand.tensor_parallel,
        replicas=cand.replicas,
    )
    if choice is None:
        return None, f"no {'/'.join(tiers)} price listed for {cand.gpu}"
    basis = (
        f"{choice.nodes} x {choice.instance} at {choice.provider} {choice.tier}, "
        f"${choice.node_hourly:,.2f}/node-hour, {cost.HOURS_PER_MONTH:g} h/month "
        f"({choice.source}, {choice.as_of})"
    )
    return choice.hourly * cost.HOURS_PER_MONTH * months, basis


def ownership(catalog: Catalog, cand: Candidate, req: Requirements) -> Ownership | None:
    """The owned-hardware comparison for the recommendation, when `--own` was asked for."""
    own = req.own
    if own is None or cand.gpu_count == 0:
        return None
    _check(own)
    server = catalog.owned_servers.get(cand.gpu)
    price = own.server_price_usd or (server.purchase_usd if server else None)
    kw = own.server_kw or (server.power_kw if server else None)
    if price is None or kw is None:
        raise UsageError(
            f"--own: owned.yaml has no server for {cand.gpu}; give --server-price USD and "
            "--server-kw KW"
        )
    gpus = server.gpus if server else catalog.gpus_per_node(cand.gpu)
    servers = cost.nodes_needed(gpus, cand.gpus_per_replica, cand.tensor_parallel, cand.replicas)
    if servers is None:
        raise UsageError(
            f"--own: a {gpus}-GPU server cannot hold tensor parallel {cand.tensor_parallel}"
        )
    months = own.years * 12
    depreciation = servers * price / months
    power = servers * kw * own.pue * cost.HOURS_PER_MONTH * own.usd_per_kwh
    ops = servers * price * own.ops_overhead_per_year / 12
    on_demand, od_basis = _rent_total(catalog, cand, req, ("on_demand",), months)
    spot, spot_basis = _rent_total(catalog, cand, req, ("spot", "community"), months)
    given = own.server_price_usd is not None and own.server_kw is not None
    return Ownership(
        servers=servers,
        gpus_per_server=gpus,
        purchase_usd_per_server=price,
        power_kw_per_server=kw,
        inputs=own,
        monthly_depreciation_usd=round(depreciation, 2),
        monthly_power_usd=round(power, 2),
        monthly_ops_usd=round(ops, 2),
        monthly_usd=round(depreciation + power + ops, 2),
        total_own_usd=round(servers * price + months * (power + ops), 2),
        total_on_demand_usd=round(on_demand, 2) if on_demand is not None else None,
        total_spot_usd=round(spot, 2) if spot is not None else None,
        on_demand_basis=od_basis,
        spot_basis=spot_basis,
        source="given (--server-price, --server-kw)" if given or server is None else server.source,
        as_of="" if given or server is None else server.as_of,
    )


def _check(own: OwnInputs) -> None:
    if own.years <= 0:
        raise UsageError(f"--years {own.years:g}: a server lives more than 0 years")
    if own.pue < 1:
        raise UsageError(f"--pue {own.pue:g}: power usage effectiveness is at least 1")
    if own.usd_per_kwh < 0 or own.ops_overhead_per_year < 0:
        raise UsageError("--kwh-price and --ops-overhead must not be negative")
