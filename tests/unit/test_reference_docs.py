"""Generated reference pages are current."""

from __future__ import annotations

from pathlib import Path

from llmhost.gateway.metrics import reference_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_metrics_reference_is_current() -> None:
    page = (DOCS / "metrics.md").read_text()
    assert page == reference_markdown(), (
        "docs/metrics.md is stale: python -m llmhost.gateway.metrics > docs/metrics.md"
    )
