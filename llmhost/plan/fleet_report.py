"""A fleet plan as a person reads it: Markdown for a design doc (the terminal prints the same)."""

from __future__ import annotations

from llmhost.plan.fleet import FleetPlan


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


def fleet_markdown(fleet: FleetPlan) -> str:
    """The fleet's members, its summed bill, the largest-model comparison and the levers."""
    out = [
        "# Serving plan: a fleet of models",
        "",
        "## Members",
        "",
        "| model | share | tier | tokens/day | recommendation | whole bill $/month |",
        "|---|---:|---|---:|---|---:|",
    ]
    for m in fleet.members:
        rec = m.plan.recommendation
        what = (
            f"{rec.replicas} x {rec.gpus_per_replica}x {rec.gpu} {rec.quantization} "
            f"({rec.node_price.provider} {rec.node_price.tier})"
            if rec and rec.node_price
            else m.plan.recommendation_reason
        )
        total = m.plan.bill.monthly_usd if m.plan.bill else None
        out.append(
            f"| {m.model} | {m.share:.0%} | {m.tier or '-'} | {m.tokens_per_day:,.0f} | {what} | "
            f"{_money(total)} |"
        )
    out += [
        "",
        "## The fleet's bill",
        "",
        f"- Sum of the members' whole bills, less {_money(fleet.shared_lines_deducted_usd)} of "
        "cluster lines (system nodes, control plane) counted once per provider: "
        f"**{_money(fleet.monthly_usd)}/month**.",
        f"- All traffic on the largest model ({fleet.largest_model}): "
        f"{_money(fleet.largest_model_monthly_usd)}/month.",
    ]
    if fleet.largest_model_monthly_usd:
        saved = fleet.largest_model_monthly_usd - fleet.monthly_usd
        out.append(
            f"- The fleet saves {_money(saved)}/month "
            f"({saved / fleet.largest_model_monthly_usd:.0%}) against it."
        )
    if fleet.tiers:
        out.append(
            "- Gateway tiers: "
            + "; ".join(f"`{t}` -> {', '.join(ms)}" for t, ms in fleet.tiers.items())
        )
    out += [
        "",
        "## Savings by lever",
        "",
        "Each step keeps the levers above it; every figure is the planner's whole bill for that "
        "configuration (modelled, not measured).",
        "",
        "| lever | $/month | saving vs the step above | share of baseline | basis |",
        "|---|---:|---:|---:|---|",
    ]
    for lever in fleet.levers:
        share = "-" if lever.share_of_baseline is None else f"{lever.share_of_baseline:.1%}"
        out.append(
            f"| {lever.lever} | {_money(lever.monthly_usd)} | {_money(lever.saving_usd)} | "
            f"{share} | {lever.basis} |"
        )
    return "\n".join(out) + "\n"
