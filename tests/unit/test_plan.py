"""The planner end to end: candidates, recommendation, bad input, JSON round trip."""

import json
from pathlib import Path

import pytest

from llmhost.errors import UsageError
from llmhost.plan import Plan, plan_for


def test_recommends_the_cheapest_that_fits() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["l4", "h100-80gb"], tokens_per_day=20e6)
    rec = plan.recommendation
    assert rec is not None and rec.fits and rec.meets_targets
    viable = [c for c in plan.candidates if c.fits and c.monthly_cost_usd is not None]
    assert rec.monthly_cost_usd == min(c.monthly_cost_usd for c in viable)  # type: ignore[type-var]
    assert plan.alternatives
    assert all(("more" in a) or ("same cost" in a) for a in plan.alternatives[:3])
    pricier = plan_for("llama-3.1-8b", gpus=["l4", "h100-80gb"], quantizations=["bf16"])
    assert any("/month more" in a for a in pricier.alternatives)


def test_nothing_fits_says_by_how_much() -> None:
    plan = plan_for("llama-3.1-405b", gpus=["t4"], quantizations=["fp16"])
    assert plan.recommendation is None
    cand = plan.candidates[0]
    assert not cand.fits and cand.memory and cand.memory.shortfall_bytes > 0
    assert "short by" in plan.recommendation_reason
    assert any("infeasible for serving" in r for r in cand.reasons)


def test_gpu_count_is_honoured_and_shortfall_reported() -> None:
    plan = plan_for("llama-3.1-70b", gpus=["h100-80gb"], quantizations=["bf16"], gpu_count=1)
    cand = plan.candidates[0]
    assert cand.gpu_count == 1 and not cand.fits
    assert "short by" in cand.reasons[0]
    two = plan_for("llama-3.1-70b", gpus=["h100-80gb"], quantizations=["bf16"], gpu_count=2)
    assert two.candidates[0].fits


def test_bf16_unsupported_on_t4() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["t4"], quantizations=["bf16"])
    assert not plan.candidates[0].fits
    assert "no BF16" in plan.candidates[0].reasons[0]


def test_min_precision_filters_formats() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["l4"], min_precision="fp8")
    assert {c.quantization for c in plan.candidates} <= {"bf16", "fp16", "fp8", "int8"}


def test_ttft_target_excludes_slow_candidates() -> None:
    plan = plan_for("gemma-3-270m", gpus=["cpu"], ttft_s=0.001)
    assert plan.recommendation is None
    assert "TTFT" in plan.recommendation_reason


def test_scale_to_zero_costs_less() -> None:
    always = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"])
    part = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], active_hours=100)
    assert always.recommendation and part.recommendation
    assert part.recommendation.monthly_cost_usd < always.recommendation.monthly_cost_usd  # type: ignore[operator]


def test_json_round_trip_and_keys() -> None:
    plan = plan_for("gemma-3-12b", gpus=["l4"], quantizations=["awq"], tokens_per_day=1e6)
    data = json.loads(plan.to_json())
    for key in ("model", "total_params", "active_params", "weights_bytes",
                "kv_bytes_per_token", "candidates", "recommendation"):  # fmt: skip
        assert key in data
    for key in ("gpu", "gpu_count", "quantization", "fits", "weights_bytes", "max_kv_tokens",
                "max_concurrent_sequences", "decode_tokens_per_s_single",
                "decode_tokens_per_s_aggregate", "hourly_cost_usd", "monthly_cost_usd",
                "cost_per_million_output_tokens_usd", "reasons"):  # fmt: skip
        assert key in data["candidates"][0]
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": ["h100"]}, "unknown GPU 'h100'; did you mean: "),
        ({"quantizations": ["int3"]}, "unknown quantization"),
        ({"context": 10_000_000}, "exceeds"),
        ({"provider": "awz"}, "unknown provider"),
        ({"min_precision": "fp12"}, "unknown quantization"),
    ],
)
def test_bad_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_for("llama-3.1-8b", **kwargs)  # type: ignore[arg-type]


def test_user_price_file_overrides(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "gpu_nodes:\n  - {gpu: l4, provider: gcp, tier: on_demand, instance: g2-standard-4,"
        " gpus: 1, vcpu: 4, ram_gib: 16, node_hourly: 0.01, source: mine, as_of: '2026-11-23'}\n"
    )
    plan = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], prices=prices)
    assert plan.recommendation and plan.recommendation.price_per_gpu_hour_usd == 0.01
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "gpu_nodes:\n  - {gpu: l5, provider: x, tier: on_demand, instance: i, gpus: 1, vcpu: 1,"
        " ram_gib: 1, node_hourly: 1, source: s, as_of: '2026-01-01'}\n"
    )
    with pytest.raises(UsageError, match="l4"):
        plan_for("llama-3.1-8b", gpus=["l4"], prices=bad)
