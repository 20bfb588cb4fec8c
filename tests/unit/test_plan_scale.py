"""Planner v2 at cluster scale: paged KV, batch defaults per GPU class, the curve, the shape
search and the engine arguments a plan hands to the engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmhost.errors import UsageError
from llmhost.plan import Plan, plan_for
from llmhost.plan.batching import (
    BatchLimits,
    batch_limits,
    held_tokens,
    sequence_kv_bytes_per_gpu,
)
from llmhost.plan.catalog import Catalog
from llmhost.plan.operating import Traffic, running_sequences


def test_batch_defaults_follow_the_gpu_class(catalog: Catalog) -> None:
    engine = catalog.engine("vllm")
    # vLLM arg_utils.py: >= 70 GiB and not an A100 -> 1024 / 8192; everything else 256 / 2048
    assert batch_limits(engine, catalog.gpu("h100-80gb")) == BatchLimits(1024, 8192)
    assert batch_limits(engine, catalog.gpu("h200")) == BatchLimits(1024, 8192)
    assert batch_limits(engine, catalog.gpu("a100-80gb")) == BatchLimits(256, 2048)
    assert batch_limits(engine, catalog.gpu("l4")) == BatchLimits(256, 2048)


def test_paged_kv_holds_the_tokens_requests_hold(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-8b")
    assert held_tokens(1024, 256) == 1168  # 1024 + 128.5, rounded up to 16-token blocks
    # Llama 3.1 8B: 131,072 B per token (all layers); TP 2 halves the heads per GPU
    assert sequence_kv_bytes_per_gpu(m, 1152, 1, 1, 2, 2047) == 1152 * 131_072
    assert sequence_kv_bytes_per_gpu(m, 1152, 2, 1, 1, 2047) == 1152 * 131_072 // 4
    plan = plan_for("llama-3.1-8b", gpus=["h100-80gb"], quantizations=["bf16"], context=8192)
    tp1 = next(c for c in plan.candidates if c.shape.tp == 1)
    assert tp1.memory is not None
    full = tp1.memory.kv_cache_bytes // (8192 * 131_072)
    # Concurrency from held tokens (prompt + output / 2), not from a full context each
    assert tp1.max_concurrent_sequences == tp1.memory.kv_cache_bytes // (1168 * 131_072)
    assert tp1.max_concurrent_sequences > 6 * full


def test_gemma_12b_awq_on_a_t4_batches() -> None:
    plan = plan_for("gemma-3-12b", gpus=["t4"], quantizations=["awq"], provider="gcp")
    rec = plan.recommendation
    assert rec is not None and rec.shape.tp == 1
    assert rec.operating_batch > 1 and rec.engine_args is not None
    assert rec.engine_args.max_num_seqs == rec.operating_batch > 1
    assert rec.engine_args.max_num_batched_tokens == 2048  # the T4's class default
    # GCP puts at most 4 T4s in one VM: no TP 8 there
    assert {c.shape.tp for c in plan.candidates} == {1, 2, 4}


def test_llama_70b_fp8_compares_tp_and_picks_by_cost() -> None:
    plan = plan_for(
        "llama-3.1-70b",
        gpus=["h100-80gb"],
        quantizations=["fp8"],
        context=4096,
        tokens_per_day=2e9,
        provider="aws",
    )
    by_tp = {c.shape.tp: c for c in plan.candidates}
    assert {1, 2, 4} <= set(by_tp) and all(by_tp[t].fits for t in (1, 2, 4))
    rec = plan.recommendation
    assert rec is not None
    costs = {t: by_tp[t].monthly_cost_usd for t in (1, 2, 4, 8)}
    assert rec.monthly_cost_usd == min(costs.values())  # type: ignore[type-var]
    # TP 1 has a sliver of KV: 91 replicas. TP 2 x 6 and TP 4 x 4 both fill two 8-GPU
    # p5.48xlarge nodes (whole nodes are billed): equal cost, TP 4 wins on throughput.
    assert by_tp[2].node_price and by_tp[2].node_price.nodes == 2
    assert rec.node_price and rec.node_price.nodes == 2 and rec.shape.tp == 4
    assert by_tp[1].replicas > 5 * rec.replicas
    assert f"TP {rec.shape.tp}" in plan.recommendation_reason
    assert any("TP 1:" in a and "more" in a for a in plan.alternatives)


def test_smaller_batch_limits_when_the_defaults_leave_no_room() -> None:
    # 70B FP8 on one H100 with 6K context: the 1024-sequence sampler peak of the H100 defaults
    # leaves less than one sequence of KV; 256 sequences / 2048 tokens leave room for it
    plan = plan_for(
        "llama-3.1-70b", gpus=["h100-80gb"], quantizations=["fp8"], context=6144, tensor_parallel=1
    )
    tp1 = plan.candidates[0]
    assert tp1.fits and tp1.engine_args is not None
    assert (tp1.engine_args.max_num_seqs <= 256, tp1.engine_args.max_num_batched_tokens) == (
        True,
        2048,
    )
    assert any("max-num-seqs 256" in r for r in tp1.reasons)


def test_curve_concurrency_and_targets() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], concurrency=16)
    rec = plan.recommendation
    assert rec is not None
    levels = [p.concurrency for p in rec.curve]
    assert levels == sorted(levels) and 16 in levels and levels[0] == 1
    assert rec.operating_batch == 16 and rec.engine_args and rec.engine_args.max_num_seqs == 16
    point = next(p for p in rec.curve if p.concurrency == 16)
    assert rec.decode_tokens_per_s_aggregate == pytest.approx(point.aggregate_tokens_per_s)
    # A per-user target picks the largest concurrency that still meets it
    fast = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], min_user_tokens_per_s=30)
    assert fast.recommendation is not None
    chosen = fast.recommendation
    assert chosen.per_user_tokens_per_s >= 30
    above = [p for p in chosen.curve if p.concurrency > chosen.operating_batch]
    assert all(p.per_user_tokens_per_s < 30 for p in above)


def test_fp8_kv_fits_more_tokens() -> None:
    auto = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"])
    fp8 = plan_for("llama-3.1-8b", gpus=["l4"], quantizations=["fp8"], kv_cache_dtype="fp8")
    a, f = auto.candidates[0], fp8.candidates[0]
    assert f.max_kv_tokens > 1.9 * a.max_kv_tokens
    assert f.engine_args and f.engine_args.kv_cache_dtype == "fp8"
    t4 = plan_for("llama-3.1-8b", gpus=["t4"], quantizations=["awq"], kv_cache_dtype="fp8")
    assert not t4.candidates[0].fits and "compute capability" in t4.candidates[0].reasons[0]


def test_tp_is_fixed_and_bounded_by_the_node() -> None:
    plan = plan_for("llama-3.1-8b", gpus=["h100-80gb"], quantizations=["bf16"], tensor_parallel=2)
    assert {c.shape.tp for c in plan.candidates} == {2}
    with pytest.raises(UsageError, match="exceeds the 4 t4 GPUs of one node at gcp"):
        plan_for("llama-3.1-8b", gpus=["t4"], tensor_parallel=8, provider="gcp")
    with pytest.raises(UsageError, match="--tp 3"):
        plan_for("llama-3.1-8b", tensor_parallel=3)
    with pytest.raises(UsageError, match="--kv-cache-dtype"):
        plan_for("llama-3.1-8b", kv_cache_dtype="int4")
    with pytest.raises(UsageError, match="--concurrency"):
        plan_for("llama-3.1-8b", concurrency=0)


def test_pipeline_only_when_no_node_fits() -> None:
    plan = plan_for("llama-3.1-405b", gpus=["a100-80gb"], quantizations=["bf16"])
    fitting = [c for c in plan.candidates if c.fits]
    assert fitting and all(c.shape.pp > 1 and c.shape.tp == 8 for c in fitting)
    rec = plan.recommendation
    assert rec and rec.engine_args and rec.engine_args.pipeline_parallel_size == rec.shape.pp


def test_moe_searches_expert_parallel() -> None:
    plan = plan_for("mixtral-8x22b", gpus=["h100-80gb"], quantizations=["fp8"])
    eps = {(c.shape.tp, c.shape.ep) for c in plan.candidates if c.fits}
    assert (4, 4) in eps and (4, 1) in eps
    ep = next(c for c in plan.candidates if c.shape == type(c.shape)(4, 1, 4))
    assert ep.engine_args and ep.engine_args.enable_expert_parallel


def test_batching_is_never_switched_off() -> None:
    for model, gpu, fmt in (
        ("gemma-3-12b", "t4", "awq"),
        ("llama-3.1-8b", "l4", "fp8"),
        ("llama-3.1-70b", "h100-80gb", "fp8"),
    ):
        plan = plan_for(model, gpus=[gpu], quantizations=[fmt], min_user_tokens_per_s=1000)
        for c in plan.candidates:
            if c.fits and c.max_concurrent_sequences >= 2:
                assert c.engine_args and c.engine_args.max_num_seqs >= 2


def test_cli_plan_options_and_json(catalog: Catalog) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmhost",
            "plan",
            "llama-3.1-8b",
            "--gpu",
            "l4",
            "--quant",
            "fp8",
            "--concurrency",
            "8",
            "--kv-cache-dtype",
            "fp8",
            "--tp",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rec = data["recommendation"]
    assert data["schema_version"] == 2 and rec["shape"] == {"tp": 1, "pp": 1, "ep": 1}
    assert rec["engine_args"]["kv_cache_dtype"] == "fp8" and rec["curve"]
    assert Plan.from_json(done.stdout).recommendation == Plan.from_dict(data).recommendation
    bad = subprocess.run(
        [sys.executable, "-m", "llmhost", "plan", "llama-3.1-8b", "--kv-cache-dtype", "fp4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--kv-cache-dtype fp4" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_running_sequences_respect_the_token_budget() -> None:
    traffic = Traffic(prompt=5000, output=500)
    # Each step carries the running sequences plus (running - 1) x 10 prompt tokens
    assert running_sequences(1000, 1000, 8192, traffic) == 745
    assert running_sequences(10, 1000, 8192, traffic) == 10
    assert running_sequences(10, 4, 8192, traffic) == 4
