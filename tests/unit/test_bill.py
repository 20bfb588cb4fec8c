"""The whole bill, pinned by hand for real scenarios; break-even against capacity; growth."""

import math

import pytest

from llmhost.errors import UsageError
from llmhost.plan import plan_for
from llmhost.plan.report import plan_markdown
from llmhost.plan.types import OwnInputs, Plan

HOURS = 730.0
DAYS = 730.0 / 24


def _lines(plan):  # type: ignore[no-untyped-def]
    assert plan.bill is not None
    return {line.item: line for line in plan.bill.lines}


def test_t4_spot_on_gke_by_hand() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["t4"], spot=True, provider="gcp", tokens_per_day=2e7)
    rec = plan.recommendation
    assert rec and rec.node_price and rec.node_price.tier == "spot"
    lines = _lines(plan)
    weights_gb = rec.weights_bytes / 1e9
    # one n1-standard-4 + T4 spot VM: GPU 0.14 + VM 0.04
    assert lines["engine nodes"].monthly_usd == pytest.approx(1 * 0.18 * HOURS)  # 131.40
    assert lines["engine nodes"].tier == "spot"
    # gateway 2 + Redis 1 + Prometheus 2 = 5 vCPU on 4-vCPU e2-standard-4 at 75%: 2 nodes
    assert lines["system nodes"].monthly_usd == pytest.approx(2 * 0.134 * HOURS)  # 195.64
    assert lines["Kubernetes control plane"].monthly_usd == pytest.approx(0.10 * HOURS)
    # Filestore Basic HDD bills its 1 TiB minimum, not the 5.7 GB the weights need
    assert lines["weights volume (ReadWriteMany)"].monthly_usd == pytest.approx(1024 * 0.20)
    out_tokens = 2e7 * 256 / 1280 * DAYS  # output share of the tokens, a month
    assert lines["egress"].monthly_usd == pytest.approx(out_tokens / 1e6 * 0.2 * 0.12, abs=0.01)
    backups = (weights_gb + 10) * 0.020
    assert lines["backups (weights + store)"].monthly_usd == pytest.approx(backups, abs=0.01)
    total = 131.40 + 195.64 + 73.0 + 204.80 + out_tokens / 1e6 * 0.2 * 0.12 + backups
    assert plan.bill and plan.bill.monthly_usd == pytest.approx(total, abs=0.02)


def test_70b_on_a_hyperscaler_by_hand() -> None:
    plan = plan_for(
        "llama-3.1-70b",
        gpus=["h100-80gb"],
        quantizations=["fp8"],
        provider="aws",
        tokens_per_day=2e9,
        context=4096,
    )
    rec = plan.recommendation
    assert rec and rec.node_price and rec.node_price.instance == "p5.48xlarge"
    lines = _lines(plan)
    nodes = rec.node_price.nodes
    assert nodes == math.ceil(rec.replicas * rec.gpus_per_replica / 8) == 2
    assert lines["engine nodes"].monthly_usd == pytest.approx(2 * 55.04 * HOURS)  # 80,358.40
    # peak 2e9 / 1280 / 86400 x 2 = 36.2 req/s: 0.36 gateway vCPU, so the 2-replica floor holds
    assert lines["system nodes"].monthly_usd == pytest.approx(2 * 0.2016 * HOURS, abs=0.01)
    assert lines["Kubernetes control plane"].monthly_usd == pytest.approx(73.0)
    weights_gb = rec.weights_bytes / 1e9
    efs = weights_gb * 1.2 * 0.30  # EFS has no minimum
    assert lines["weights volume (ReadWriteMany)"].monthly_usd == pytest.approx(efs, abs=0.01)
    egress = 2e9 * 0.2 * DAYS / 1e6 * 0.2 * 0.09
    assert lines["egress"].monthly_usd == pytest.approx(egress, abs=0.01)  # 219.00
    backups = (weights_gb + 10) * 0.023
    total = 80358.40 + 294.34 + 73.0 + efs + egress + backups
    assert plan.bill and plan.bill.monthly_usd == pytest.approx(total, abs=0.03)
    md = plan_markdown(plan)
    assert "## The whole bill" in md and "| 1 | engine nodes | 2 x p5.48xlarge" in md
    assert "EFS Standard (efs-sc)" in md and "**total**" in md


def test_no_managed_kubernetes_states_the_assumption() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["h100-80gb"], provider="runpod", tokens_per_day=1e7)
    lines = _lines(plan)
    control = lines["Kubernetes control plane"]
    assert control.monthly_usd == 0 and "assumes a cluster you run yourself" in control.basis
    assert "engine nodes' spare vCPU" in lines["system nodes"].basis


def test_break_even_beyond_capacity_is_flagged() -> None:
    plan = plan_for(
        "llama-3.1-70b",
        gpus=["h100-80gb"],
        quantizations=["fp8"],
        provider="aws",
        tokens_per_day=2e8,
    )
    rec = plan.recommendation
    assert rec and rec.hosted
    full = rec.replicas * rec.requests_per_s_capacity * 86400 * 1280
    carry = full * 0.7 / 2.0  # 30% headroom, peak 2x mean
    for h in rec.hosted:
        assert h.break_even_tokens_per_day is not None
        assert h.fleet_capacity_tokens_per_day == pytest.approx(carry, rel=1e-6)
        assert h.break_even_utilization == pytest.approx(h.break_even_tokens_per_day / full, 1e-3)
        assert h.beyond_capacity == (h.break_even_tokens_per_day > carry)
    assert any(h.beyond_capacity for h in rec.hosted)
    assert "beyond this fleet's capacity" in plan_markdown(plan)


def test_headroom_and_peak_to_mean_size_the_replicas() -> None:
    base = dict(gpus=["l4"], quantizations=["fp8"], provider="aws", tokens_per_day=3e8)
    loose = plan_for("llama-3.1-8b", headroom=0.0, peak_to_mean=1.0, **base)  # type: ignore[arg-type]
    tight = plan_for("llama-3.1-8b", headroom=0.5, peak_to_mean=3.0, **base)  # type: ignore[arg-type]
    assert loose.recommendation and tight.recommendation
    cap = loose.recommendation.requests_per_s_capacity
    assert loose.recommendation.shape == tight.recommendation.shape
    assert loose.recommendation.replicas == math.ceil(3e8 / 1280 / 86400 / cap)
    assert tight.recommendation.replicas == math.ceil(3e8 / 1280 / 86400 * 3 / (cap * 0.5))
    for bad in ({"headroom": 1.0}, {"peak_to_mean": 0.5}, {"growth_per_month": -1.0}):
        with pytest.raises(UsageError):
            plan_for("llama-3.1-8b", gpus=["l4"], **bad)  # type: ignore[arg-type]


def test_growth_shows_when_to_add_capacity() -> None:
    plan = plan_for(
        "llama-3.1-70b",
        gpus=["h100-80gb"],
        quantizations=["fp8"],
        provider="aws",
        tokens_per_day=2e8,
        growth_per_month=0.2,
        horizon_months=12,
    )
    rec = plan.recommendation
    assert rec and plan.growth
    first, last = plan.growth[0], plan.growth[-1]
    assert (first.month, first.replicas) == (0, rec.replicas) and last.month == 12
    cap = rec.requests_per_s_capacity * 0.7
    for step in plan.growth:
        assert step.replicas == max(1, math.ceil(step.peak_requests_per_s / cap))
        assert step.peak_requests_per_s == pytest.approx(2e8 / 1280 / 86400 * 2 * 1.2**step.month)
    assert last.replicas > first.replicas
    assert "Add capacity at month(s)" in plan_markdown(plan)


def test_owned_8_gpu_server_over_4_years_by_hand() -> None:
    own = OwnInputs(years=4, usd_per_kwh=0.10, pue=1.3, ops_overhead_per_year=0.10)
    plan = plan_for(
        "llama-3.1-70b",
        gpus=["h100-80gb"],
        quantizations=["fp8"],
        provider="aws",
        tokens_per_day=2e8,
        own=own,
    )
    o = plan.ownership
    assert o and o.servers == 1 and o.gpus_per_server == 8
    # owned.yaml: one 8x H100 server at $310,000, 10.2 kW rated
    depreciation = 310_000 / 48  # 6,458.33
    power = 10.2 * 1.3 * 730 * 0.10  # 967.98
    ops = 310_000 * 0.10 / 12  # 2,583.33
    assert o.monthly_depreciation_usd == pytest.approx(depreciation, abs=0.01)
    assert o.monthly_power_usd == pytest.approx(power, abs=0.01)
    assert o.monthly_ops_usd == pytest.approx(ops, abs=0.01)
    assert o.total_own_usd == pytest.approx(310_000 + 48 * (power + ops), abs=0.01)  # 480,462.72
    assert o.total_on_demand_usd == pytest.approx(55.04 * 730 * 48, abs=0.01)  # p5.48xlarge
    assert o.total_spot_usd == pytest.approx(18.00 * 730 * 48, abs=0.01)
    md = plan_markdown(plan)
    assert "## Own or rent over 4 years" in md and "| rent on-demand | $1,928,602 |" in md


def test_own_needs_a_server_price_for_unlisted_gpus() -> None:
    with pytest.raises(UsageError, match="--server-price"):
        plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], own=OwnInputs())
    given = OwnInputs(server_price_usd=20_000, server_kw=1.0)
    plan = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], own=given)
    assert plan.ownership and plan.ownership.source.startswith("given")
    with pytest.raises(UsageError, match="--pue"):
        plan_for(
            "llama-3.1-8b", gpus=["l4"], own=OwnInputs(pue=0.5, server_price_usd=1, server_kw=1)
        )


def test_the_bill_round_trips_through_json() -> None:
    plan = plan_for(
        "llama-3.1-70b",
        gpus=["h100-80gb"],
        quantizations=["fp8"],
        provider="aws",
        tokens_per_day=2e8,
        growth_per_month=0.1,
        horizon_months=6,
        own=OwnInputs(),
    )
    again = Plan.from_json(plan.to_json())
    assert again.bill == plan.bill and again.ownership == plan.ownership
    assert again.growth == plan.growth and again.requirements == plan.requirements
    assert (
        again.recommendation and again.recommendation.node_price == plan.recommendation.node_price
    )  # type: ignore[union-attr]
