"""The planner against published serving measurements (catalog/measurements.yaml)."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from llmhost.errors import UsageError
from llmhost.plan.catalog import Catalog
from llmhost.plan.published import (
    FIGURES,
    KV_FIGURES,
    evaluate,
    kv_cases,
    load_cases,
    parse_kv_cases,
    predict_kv,
    within,
)


def test_every_case_has_its_setup_source_and_date(catalog: Catalog) -> None:
    cases = load_cases()
    assert sum(c.scored for c in cases) >= 15
    assert all(c.note for c in cases if not c.scored)  # an unscored case says why
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert c.model in catalog.models and c.gpu in catalog.gpus and c.weights in catalog.formats
        assert c.figure in FIGURES and c.measured > 0 and c.concurrency >= 1
        assert c.engine.strip() and c.source.startswith("https://")
        assert datetime.date.fromisoformat(c.as_of) <= datetime.date(2027, 1, 1)


def test_planner_matches_published_measurements() -> None:
    rows = [r for r in evaluate() if r.case.scored]
    close = [r for r in rows if within(r.ratio, 0.25)]
    assert len(close) >= 0.8 * len(rows), [(r.case.id, round(r.ratio, 2)) for r in rows]
    assert all(0.5 <= r.ratio <= 2.0 for r in rows), [(r.case.id, r.ratio) for r in rows]


def test_vllm_start_up_kv_figures_within_5_percent(catalog: Catalog) -> None:
    cases = kv_cases()
    assert len({c.id for c in cases}) == len(cases)
    for c in cases:
        assert c.model in catalog.models and c.gpu in catalog.gpus and c.weights in catalog.formats
        assert c.figure in KV_FIGURES and c.measured > 0 and c.tp >= 1
        assert c.source.startswith("https://") and c.engine.strip()
        assert datetime.date.fromisoformat(c.as_of) <= datetime.date(2027, 1, 1)
        assert c.scored or c.note
    for c in (c for c in cases if c.scored):
        assert within(predict_kv(c) / c.measured, 0.05), (c.id, predict_kv(c), c.measured)


def test_gpu_kv_cache_size_is_scored_for_every_format_on_one_gpu_and_under_tp() -> None:
    """bf16, FP8 weights and W8A8 (format int8) at TP 1 and TP > 1; an FP8 KV cache at TP 1
    (no published FP8-KV log at TP > 1 with its setup was found, as the yaml says)."""
    scored = [c for c in kv_cases() if c.scored]
    kinds = {(c.weights, c.kv_cache_dtype, c.tp > 1) for c in scored if c.figure == "kv_tokens"}
    for weights in ("bf16", "fp8", "int8"):
        assert {(weights, "auto", False), (weights, "auto", True)} <= kinds, weights
    assert ("bf16", "fp8", False) in kinds
    measured_weights = {(c.weights, c.tp > 1) for c in scored if c.figure == "weights_gib"}
    assert {("fp8", False), ("fp8", True), ("int8", False), ("int8", True)} <= measured_weights


def test_version_independent_figures_do_not_read_the_budget() -> None:
    pool_case = next(c for c in kv_cases() if c.figure == "kv_tokens_from_pool")
    assert pool_case.pool_gib
    tokens = predict_kv(pool_case)
    assert predict_kv(replace(pool_case, gpu_memory_utilization=0.5)) == tokens
    assert 1.99 < predict_kv(replace(pool_case, pool_gib=2 * pool_case.pool_gib)) / tokens < 2.01
    assert 1.99 < predict_kv(replace(pool_case, kv_cache_dtype="fp8")) / tokens < 2.01
    weights = next(c for c in kv_cases() if c.figure == "weights_gib" and c.tp == 2)
    assert predict_kv(replace(weights, gpu_memory_utilization=0.5)) == predict_kv(weights)
    halves = predict_kv(replace(weights, tp=1)) / predict_kv(weights)
    assert 1.999 < halves < 2.001


HEADER = "cases:\n  - {id: x, model: llama-3.1-8b, gpu: h100-80gb, tp: 1, weights: fp8, "
SETUP = (
    "kv_cache_dtype: auto, gpu_memory_utilization: 0.95, max_model_len: 8192, engine: v, "
    "source: 'https://e', as_of: '2026-12-02', measured: 1"
)


def test_a_malformed_kv_case_is_a_usage_error_naming_it() -> None:
    good = parse_kv_cases(HEADER + SETUP + ", figure: kv_tokens_from_pool, pool_gib: 10}")
    assert good[0].pool_gib == 10
    for tail, said in (
        (", figure: kv_tokens_per_gpu}", "unknown figure"),
        (", figure: kv_tokens_from_pool}", "needs pool_gib"),
        (", figure: kv_tokens, pool: 3}", "pool"),
    ):
        with pytest.raises(UsageError, match=said) as exc:
            parse_kv_cases(HEADER + SETUP + tail)
        assert "[x]" in str(exc.value)
