"""The planner against published serving measurements (catalog/measurements.yaml)."""

from __future__ import annotations

import datetime

from llmhost.plan.catalog import Catalog
from llmhost.plan.published import FIGURES, evaluate, kv_cases, load_cases, predict_kv, within


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
    scored = [c for c in cases if c.scored]
    kinds = {(c.kv_cache_dtype, c.tp > 1) for c in scored}
    assert {("auto", False), ("auto", True), ("fp8", False)} <= kinds
    for c in cases:
        assert c.model in catalog.models and c.source.strip() and c.engine.strip()
        assert datetime.date.fromisoformat(c.as_of) <= datetime.date(2027, 1, 1)
        assert c.scored or c.note
    for c in scored:
        assert within(predict_kv(c) / c.measured, 0.05), (c.id, predict_kv(c), c.measured)
