"""The fleet over time: traffic growing `growth_per_month`, the replicas it needs each month up to
the horizon, and the months at which capacity must be added."""

from __future__ import annotations

from llmhost.plan.candidate import replicas_for, required_rps
from llmhost.plan.cost import HOURS_PER_MONTH, nodes_needed
from llmhost.plan.types import Candidate, GrowthStep, Requirements


def fleet_over_time(cand: Candidate, req: Requirements) -> list[GrowthStep]:
    """Month 0, every month the replica count rises, and the horizon; [] without a horizon."""
    n = cand.node_price
    if req.horizon_months <= 0 or n is None or cand.requests_per_s_capacity <= 0:
        return []
    hours = HOURS_PER_MONTH if req.active_hours is None else min(req.active_hours, HOURS_PER_MONTH)
    steps: list[GrowthStep] = []
    for month in range(req.horizon_months + 1):
        factor = (1 + req.growth_per_month) ** month
        rps = required_rps(req) * factor
        replicas = replicas_for(rps, cand.requests_per_s_capacity, req)
        nodes = nodes_needed(n.gpus_per_node, cand.gpus_per_replica, cand.tensor_parallel, replicas)
        nodes = nodes if nodes is not None else n.nodes
        changed = not steps or replicas != steps[-1].replicas
        if changed or month == req.horizon_months:
            steps.append(
                GrowthStep(
                    month=month,
                    tokens_per_day=req.tokens_per_day * factor if req.tokens_per_day else None,
                    peak_requests_per_s=round(rps, 4),
                    replicas=replicas,
                    nodes=nodes,
                    engine_monthly_usd=round(nodes * n.node_hourly_usd * hours, 2),
                )
            )
    return steps
