"""The CPU is proposed only when asked or fast enough, and priced as a VM with the RAM it needs."""

import pytest

from llmhost.plan import plan_for
from llmhost.plan.candidate import cpu_ram_gib
from llmhost.plan.catalog import load_catalog
from llmhost.plan.recommend import CPU_UNASKED_MIN_TOKENS_PER_S


def test_slow_cpu_is_not_proposed_unasked() -> None:
    plan = plan_for("gemma-3-12b", tokens_per_day=1e6)
    cpu = [c for c in plan.candidates if c.gpu == "cpu" and c.fits]
    assert cpu and all(not c.meets_targets for c in cpu)
    assert all(c.decode_tokens_per_s_single < CPU_UNASKED_MIN_TOKENS_PER_S for c in cpu)
    assert any("ask with --gpu cpu" in c.reasons[-1] for c in cpu)
    assert plan.recommendation and plan.recommendation.gpu != "cpu"


def test_asked_cpu_is_priced_with_the_ram_it_needs() -> None:
    plan = plan_for("gemma-3-12b", tokens_per_day=1e6, gpus=["cpu"])
    rec = plan.recommendation
    assert rec and rec.gpu == "cpu" and rec.node_price and rec.memory
    need = cpu_ram_gib(rec)
    kv = rec.memory.per_sequence_kv_bytes * rec.operating_batch
    by_hand = (rec.memory.weights_bytes + kv + rec.memory.overhead_bytes) / 1024**3 + 2
    assert need == pytest.approx(by_hand)
    assert rec.node_price.ram_gib >= need > 8  # not the 8 GiB m7i.large
    rows = load_catalog().prices_for("cpu")
    cheaper = [p for p in rows if p.node_hourly < rec.node_price.node_hourly_usd]
    assert all(p.ram_gib < need for p in cheaper)  # the cheapest VM that holds it


def test_small_model_on_cpu_is_proposed_when_fast_enough() -> None:
    plan = plan_for("gemma-3-270m", tokens_per_day=1e6)
    cpu = [c for c in plan.candidates if c.gpu == "cpu" and c.fits and c.meets_targets]
    assert cpu and all(c.decode_tokens_per_s_single >= CPU_UNASKED_MIN_TOKENS_PER_S for c in cpu)
