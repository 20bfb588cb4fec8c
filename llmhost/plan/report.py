"""A plan as a person reads it: a terminal table or a Markdown design-doc section."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from llmhost.plan.bill import bill_table
from llmhost.plan.catalog import GIB
from llmhost.plan.catalog.price_rows import TIER_LABELS
from llmhost.plan.types import Candidate, HostedComparison, Ownership, Plan


def _money(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"


def _shape(c: Candidate) -> str:
    if c.engine != "vllm":
        return "-"
    label = f"TP{c.shape.tp}" + (f" PP{c.shape.pp}" if c.shape.pp > 1 else "")
    label += f" EP{c.shape.ep}" if c.shape.ep > 1 else ""
    return label + (f" x{c.replicas}" if c.replicas > 1 else "")


def _row(c: Candidate) -> list[str]:
    return [
        f"{c.gpu_count}x {c.gpu}" if c.gpu_count else c.gpu,
        _shape(c),
        c.quantization,
        c.engine,
        "yes" if c.fits else "no",
        f"{c.weights_bytes / GIB:.1f}",
        f"{c.max_kv_tokens:,}",
        f"{c.max_concurrent_sequences:,}",
        f"{c.decode_tokens_per_s_single:,.1f}",
        f"{c.operating_batch:,}" if c.fits else "-",
        f"{c.decode_tokens_per_s_aggregate:,.0f}",
        f"{c.ttft_s:.2f}" if c.fits else "-",
        _money(c.monthly_cost_usd),
        _money(c.cost_per_million_output_tokens_usd, 3),
        _priced_on(c),
    ]


def _priced_on(c: Candidate) -> str:
    """Where a candidate's price comes from: provider, tier and nodes."""
    n = c.node_price
    if n is None:
        return "-"
    return f"{n.provider} {n.tier}: {n.nodes}x {n.instance}"


def price_lines(c: Candidate) -> list[str]:
    """The node price a candidate is costed at, with its tier, shape, source and date."""
    n = c.node_price
    if n is None:
        return []
    return [
        f"{n.nodes} x {n.instance} at {n.provider}, {TIER_LABELS.get(n.tier, n.tier)} tier: "
        f"${n.node_hourly_usd:,.3f}/node-hour ({n.gpus_per_node} GPU, {n.vcpu} vCPU, "
        f"{n.ram_gib:g} GiB RAM per node) = ${n.nodes * n.node_hourly_usd:,.2f}/hour",
        f"price source: {n.source} ({n.as_of})",
    ]


HEADERS = [
    "GPUs",
    "shape",
    "format",
    "engine",
    "fits",
    "weights GiB",
    "KV tokens",
    "max seqs",
    "tok/s (1 user)",
    "batch",
    "tok/s (all)",
    "TTFT s",
    "$/month",
    "$/1M out",
    "priced on",
]


def _shown(plan: Plan) -> list[Candidate]:
    """The cheapest shape of each GPU and format, plus every shape of the recommended one."""
    rec = plan.recommendation
    best: dict[tuple[str, str], Candidate] = {}
    for c in sorted(plan.candidates, key=lambda c: (not c.fits, c.monthly_cost_usd or 1e18)):
        best.setdefault((c.gpu, c.quantization), c)
    shown = list(best.values())
    if rec is not None:
        shown += [
            c
            for c in plan.candidates
            if c.gpu == rec.gpu and c.quantization == rec.quantization and c not in shown
        ]
    return sorted(shown, key=lambda c: (not c.fits, c.monthly_cost_usd or float("inf")))


def print_plan(plan: Plan, console: Console) -> None:
    """The plan as a table of candidates and the recommendation, for a terminal."""
    req = plan.requirements
    console.print(
        f"[bold]{plan.model}[/]: {plan.total_params / 1e9:.2f}B params "
        f"({plan.active_params / 1e9:.2f}B active), KV {plan.kv_bytes_per_token:,} B/token, "
        f"{plan.kv_bytes_per_sequence / GIB:.2f} GiB per {req.context}-token sequence"
    )
    table = Table(*HEADERS, show_lines=False)
    for c in _shown(plan):
        style = "bold green" if c is plan.recommendation or c == plan.recommendation else None
        table.add_row(*_row(c), style=style if c.fits else "dim")
    console.print(table)
    if plan.recommendation:
        rec = plan.recommendation
        console.print(f"[bold green]Recommendation[/]: {plan.recommendation_reason}")
        for line in rec.reasons + price_lines(rec):
            console.print(f"  - {line}")
        if plan.bill:
            console.print(f"  the whole bill: ${plan.bill.monthly_usd:,.2f}/month")
            for bl in plan.bill.lines:
                console.print(f"    {bl.item}: ${bl.monthly_usd:,.2f} ({bl.quantity}; {bl.basis})")
        if rec.engine_args:
            args = rec.engine_args
            console.print(
                f"  engine: --max-num-seqs {args.max_num_seqs} --max-num-batched-tokens "
                f"{args.max_num_batched_tokens} --max-model-len {args.max_model_len} "
                f"--kv-cache-dtype {args.kv_cache_dtype} -tp {args.tensor_parallel_size} "
                f"-pp {args.pipeline_parallel_size}"
                + (" --enable-expert-parallel" if args.enable_expert_parallel else "")
            )
        if rec.curve:
            points = ", ".join(
                f"{p.concurrency}: {p.per_user_tokens_per_s:,.0f}/{p.aggregate_tokens_per_s:,.0f}"
                f" tok/s, TTFT {p.ttft_s:.2f} s"
                for p in rec.curve
            )
            console.print(f"  curve (users: per-user/aggregate): {points}")
    else:
        console.print(f"[bold red]No recommendation[/]: {plan.recommendation_reason}")
    for line in plan.alternatives:
        console.print(f"  alternative {line}")


def ownership_section(o: Ownership) -> list[str]:
    """Owning against renting, month by month and over the servers' life, line by line."""
    i = o.inputs
    months = i.years * 12

    def total(v: float | None) -> str:
        return "-" if v is None else f"${v:,.0f}"

    return [
        f"## Own or rent over {i.years:g} years",
        "",
        f"{o.servers} server(s) of {o.gpus_per_server} GPUs at ${o.purchase_usd_per_server:,.0f} "
        f"each, {o.power_kw_per_server:g} kW rated ({o.source}{f', {o.as_of}' if o.as_of else ''}"
        f"); ${i.usd_per_kwh:g}/kWh, PUE {i.pue:g}, operations {i.ops_overhead_per_year:.0%} of "
        "the hardware a year (assumptions unless given). Engine servers only: the other lines of "
        "the bill are the same whether the engines are owned or rented.",
        "",
        "| line | $/month | basis |",
        "|---|---:|---|",
        f"| depreciation | {o.monthly_depreciation_usd:,.2f} | {o.servers} x "
        f"${o.purchase_usd_per_server:,.0f} / {months:g} months, no resale |",
        f"| power and cooling | {o.monthly_power_usd:,.2f} | {o.servers} x "
        f"{o.power_kw_per_server:g} kW x PUE {i.pue:g} x 730 h x ${i.usd_per_kwh:g}/kWh |",
        f"| operations | {o.monthly_ops_usd:,.2f} | {i.ops_overhead_per_year:.0%} x hardware "
        "/ 12 |",
        f"| **owned, per month** | **{o.monthly_usd:,.2f}** | |",
        "",
        f"| over {i.years:g} years | total | basis |",
        "|---|---:|---|",
        f"| own | {total(o.total_own_usd)} | purchase + {months:g} months of power and "
        "operations |",
        f"| rent on-demand | {total(o.total_on_demand_usd)} | {o.on_demand_basis} |",
        f"| rent spot / community | {total(o.total_spot_usd)} | {o.spot_basis} |",
    ]


def _utilisation(h: HostedComparison) -> str:
    u = h.break_even_utilization
    return "-" if u is None else f"{u:.0%}"


def _reachable(h: HostedComparison) -> str:
    if h.break_even_utilization is None:
        return "-"
    return "**no: beyond this fleet's capacity**" if h.beyond_capacity else "yes"


def _tier(c: Candidate) -> str:
    if c.node_price is None:
        return "-"
    return TIER_LABELS.get(c.node_price.tier, c.node_price.tier)


def _nodes(c: Candidate) -> str:
    n = c.node_price
    if n is None:
        return "-"
    return (
        f"{n.nodes} x {n.instance} ({n.gpus_per_node} GPU, {n.vcpu} vCPU, {n.ram_gib:g} GiB); "
        f"source: {n.source} ({n.as_of})"
    )


def plan_markdown(plan: Plan) -> str:
    """A report to paste into a design doc."""
    req, rec = plan.requirements, plan.recommendation
    out = [f"# Serving plan: {plan.model}", "", "## Requirements", ""]
    traffic = (
        f"{req.tokens_per_day:,.0f} tokens/day"
        if req.tokens_per_day
        else (f"{req.requests_per_s:g} req/s" if req.requests_per_s else "not given")
    )
    out += [
        f"- Context: {req.context:,} tokens (typical request {req.prompt_tokens} in / "
        f"{req.output_tokens} out)",
        f"- Traffic: {traffic} (peak {req.peak_to_mean:g}x mean, {req.headroom:.0%} headroom "
        "kept free at peak)",
        f"- TTFT target: {f'{req.ttft_s:g} s' if req.ttft_s else 'none'}; per-user speed "
        f"target: {req.min_user_tokens_per_s:g} tokens/s",
        f"- Lowest precision: {req.min_precision or 'any'}; spot: "
        f"{'allowed' if req.spot else 'no'}; active hours/month: "
        f"{req.active_hours if req.active_hours is not None else '730 (24/7)'}",
        "",
        "## Model",
        "",
        f"- Parameters: {plan.total_params / 1e9:.2f}B total, {plan.active_params / 1e9:.2f}B "
        "active per token",
        f"- KV cache: {plan.kv_bytes_per_token:,} bytes/token (all layers, 16-bit); "
        f"{plan.kv_bytes_per_sequence / GIB:.2f} GiB for one {req.context:,}-token sequence "
        "(sliding-window layers capped)",
        f"- Architecture: {plan.architecture}",
        "",
        "## Recommendation",
        "",
    ]
    if rec:
        mem = rec.memory
        node_hourly = rec.node_price.node_hourly_usd if rec.node_price else None
        out += [
            plan.recommendation_reason[0].upper() + plan.recommendation_reason[1:] + ".",
            "",
            f"- Hardware: {rec.replicas} replica(s) x {rec.gpus_per_replica}x {rec.gpu} "
            f"(tensor parallel {rec.tensor_parallel}, pipeline {rec.pipeline_parallel}), "
            f"engine {rec.engine}",
            f"- Quantization: {rec.quantization}, weights {rec.weights_bytes / GIB:.1f} GiB",
        ]
        if mem:
            out.append(
                f"- Memory per device: budget {mem.budget_bytes / GIB:.1f} GiB = weights "
                f"{mem.weights_bytes / GIB:.1f} + overhead {mem.overhead_bytes / GIB:.1f} + KV "
                f"{mem.kv_cache_bytes / GIB:.1f} GiB ({rec.max_kv_tokens:,} tokens, "
                f"{rec.max_concurrent_sequences:,} sequences at full context)"
            )
        out += [
            f"- Shape: {_shape(rec)}; engine arguments: {rec.engine_args}",
            f"- Speed: {rec.decode_tokens_per_s_single:,.1f} tokens/s for one user, "
            f"{rec.decode_tokens_per_s_aggregate:,.0f} tokens/s aggregate at batch "
            f"{rec.operating_batch}; TTFT {rec.ttft_s:.2f} s for a {req.prompt_tokens}-token "
            "prompt",
            "",
            "## Cost",
            "",
            "| item | value |",
            "|---|---|",
            f"| provider | {rec.provider} |",
            f"| price tier | {_tier(rec)} |",
            f"| nodes | {_nodes(rec)} |",
            f"| $/node-hour | {_money(node_hourly, 3)} |",
            f"| $/GPU-hour | {_money(rec.price_per_gpu_hour_usd, 3)} |",
            f"| $/hour | {_money(rec.hourly_cost_usd, 2)} |",
            f"| control plane $/month | {_money(rec.control_plane_monthly_usd, 2)} |",
            f"| weights volume $/month | {_money(rec.storage_monthly_usd, 2)} |",
            f"| $/month (24/7) | {_money(rec.monthly_cost_24x7_usd)} |",
            f"| $/month (as planned) | {_money(rec.monthly_cost_usd)} |",
            f"| $ per 1M output tokens at {req.utilization:.0%} utilisation | "
            f"{_money(rec.cost_per_million_output_tokens_usd, 3)} |",
            "",
        ]
        if plan.bill:
            out += [
                "## The whole bill",
                "",
                f"Monthly, at {plan.bill.provider}, engine nodes running "
                f"{plan.bill.engine_hours_per_month:g} h/month; every other line runs 24/7.",
                "",
                *bill_table(plan.bill),
                "",
                *[f"- Assumption: {a}" for a in plan.bill.assumptions],
                "",
            ]
        out += [
            "## Hosted APIs and break-even",
            "",
            "| provider | model | same weights | $/1M in | $/1M out | $/day at this traffic |"
            " break-even tokens/day | utilisation needed | reachable |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for h in rec.hosted:
            even = h.break_even_tokens_per_day
            out.append(
                f"| {h.provider} | {h.api_model} | {'yes' if h.same_model else 'no'} | "
                f"{h.input_per_million_usd:.2f} | {h.output_per_million_usd:.2f} | "
                f"{_money(h.cost_per_day_usd, 2)} | "
                f"{'-' if even is None else f'{even:,.0f}'} | {_utilisation(h)} | "
                f"{_reachable(h)} |"
            )
        cap = rec.hosted[0].fleet_capacity_tokens_per_day if rec.hosted else None
        if cap is not None:
            out += [
                "",
                f"This fleet carries at most {cap:,.0f} tokens/day on average at this traffic "
                f"shape ({req.headroom:.0%} headroom, peak {req.peak_to_mean:g}x mean); a "
                "break-even above that is not reachable without adding replicas.",
            ]
    else:
        out.append(f"No configuration works: {plan.recommendation_reason}.")
    if plan.ownership:
        out += ["", *ownership_section(plan.ownership)]
    if plan.growth:
        out += [
            "",
            f"## The fleet over {req.horizon_months} months ({req.growth_per_month:+.0%} traffic "
            "a month)",
            "",
            "| month | tokens/day | peak req/s | replicas | nodes | engine $/month |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {g.month} | {'-' if g.tokens_per_day is None else f'{g.tokens_per_day:,.0f}'} | "
            f"{g.peak_requests_per_s:,.2f} | {g.replicas} | {g.nodes} | "
            f"{g.engine_monthly_usd:,.2f} |"
            for g in plan.growth
        ]
        adds = [g.month for g in plan.growth[1:] if g.replicas > plan.growth[0].replicas]
        out += [
            "",
            "Add capacity at month(s): " + ", ".join(str(m) for m in adds)
            if adds
            else "The fleet of month 0 carries the traffic to the horizon.",
        ]
    out += ["", "## Alternatives", ""]
    out += [f"- {line}" for line in plan.alternatives] or ["- none"]
    if rec and rec.curve:
        out += [
            "",
            "## Curve (one replica)",
            "",
            "| users | running | per-user tok/s | aggregate tok/s | TTFT s |",
            "|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {p.concurrency} | {p.running} | {p.per_user_tokens_per_s:,.1f} | "
            f"{p.aggregate_tokens_per_s:,.0f} | {p.ttft_s:.3f} |"
            for p in rec.curve
        ]
    out += ["", "## All candidates", "", "| " + " | ".join(HEADERS) + " |"]
    out.append("|" + "---|" * len(HEADERS))
    out += ["| " + " | ".join(_row(c)) + " |" for c in plan.candidates]
    out += ["", "## Assumptions", ""] + [f"- {a}" for a in plan.assumptions]
    return "\n".join(out) + "\n"
