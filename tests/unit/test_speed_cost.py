"""Speed and cost formulas, checked against hand computation."""

import pytest

from llmhost.plan import cost
from llmhost.plan.catalog import Catalog
from llmhost.plan.speed import Hardware, decode_step_seconds, estimate_speed


def test_decode_step_roofline_by_hand(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    hw = Hardware(catalog.gpu("h100-80gb"), catalog.engine("vllm"))
    # weights read: all but the (untied) embedding table = 16,060,522,496 - 1,050,673,152
    # KV read: 1,000 tokens x 131,072 B; bandwidth 3,350 GB/s x 0.75; + 2 ms step overhead
    read = 16_060_522_496 - 128256 * 4096 * 2 + 1000 * 131_072
    expected = read / (3350e9 * 0.75) + 0.002
    assert decode_step_seconds(m, catalog.format("bf16"), catalog, hw, 1, 1000) == pytest.approx(
        expected, rel=1e-9
    )


def test_batching_raises_aggregate_not_single(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    hw = Hardware(catalog.gpu("h100-80gb"), catalog.engine("vllm"))
    s = estimate_speed(m, catalog.format("bf16"), catalog, hw, 64, 1024, 256)
    assert s.decode_tokens_per_s_aggregate > 10 * s.decode_tokens_per_s_single
    assert s.ttft_s > 1024 / s.prefill_tokens_per_s


def test_user_speed_target_limits_batch(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    hw = Hardware(catalog.gpu("l4"), catalog.engine("vllm"))
    free = estimate_speed(m, catalog.format("fp8"), catalog, hw, 128, 1024, 256)
    capped = estimate_speed(m, catalog.format("fp8"), catalog, hw, 128, 1024, 256, 20.0)
    assert capped.batch < free.batch
    assert capped.per_user_tokens_per_s >= 20.0


def test_tensor_parallel_is_faster(catalog: Catalog) -> None:
    m, fmt = catalog.model("llama-3.1-70b"), catalog.format("bf16")
    engine, gpu = catalog.engine("vllm"), catalog.gpu("h100-80gb")
    two = decode_step_seconds(m, fmt, catalog, Hardware(gpu, engine, 2), 1, 1000)
    four = decode_step_seconds(m, fmt, catalog, Hardware(gpu, engine, 4), 1, 1000)
    assert four < two


def test_deployment_cost_by_hand(catalog: Catalog) -> None:
    # two 8-GPU p5.48xlarge nodes at $55.04/node-hour
    price = cost.PriceChoice(
        "aws", 6.88, "on_demand", "test", "2026-11-09", node_gpus=8, node_hourly=55.04, nodes=2
    )
    c = cost.deployment_cost(catalog, price, 100_000_000_000, None)
    assert c.hourly == pytest.approx(110.08)
    storage = 0.08 * 100 * 1.2  # gp3 $/GB-month x GB x headroom
    assert c.monthly_24x7 == pytest.approx(110.08 * 730 + 0.10 * 730 + storage)
    idle = cost.deployment_cost(catalog, price, 100_000_000_000, 100)
    assert idle.monthly == pytest.approx(110.08 * 100 + 0.10 * 730 + storage)


def test_cost_per_million_tokens() -> None:
    # $3.60/h at 1,000 tokens/s, busy half the time: 1.8M tokens/h -> $2 per 1M
    assert cost.cost_per_million_output_tokens(3.6, 1000, 0.5) == pytest.approx(2.0)
    assert cost.cost_per_million_output_tokens(3.6, 0, 0.5) is None


def test_spot_is_chosen_when_allowed(catalog: Catalog) -> None:
    on_demand = cost.choose_price(catalog, "h100-80gb", spot=False)
    spot = cost.choose_price(catalog, "h100-80gb", spot=True)
    assert on_demand and spot and spot.spot and spot.per_gpu_hour < on_demand.per_gpu_hour
    aws = cost.choose_price(catalog, "h100-80gb", False, "aws", gpus_per_replica=8, tp=8)
    assert aws and (aws.instance, aws.nodes, aws.hourly) == ("p5.48xlarge", 1, 55.04)
    assert spot.tier in ("spot", "community") and on_demand.tier == "on_demand"


def test_break_even_by_hand(catalog: Catalog) -> None:
    rows = cost.compare_hosted(catalog, "llama-3.1-8b", 730.0, 0.8, 10_000_000)
    groq = next(r for r in rows if r.provider == "groq")
    blended = (0.8 * 0.05 + 0.2 * 0.08) / 1e6
    assert groq.same_model
    assert groq.break_even_tokens_per_day == pytest.approx(730.0 / (730 / 24) / blended)
    assert groq.cost_per_day_usd == pytest.approx((8e6 * 0.05 + 2e6 * 0.08) / 1e6)
    assert any(not r.same_model for r in rows)  # closed reference models shown too
