"""The generated reference pages (CLI, configuration, metrics) are current."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmhost.reference import pages

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(pages()))
def test_the_reference_page_is_current(name: str) -> None:
    assert (DOCS / name).read_text() == pages()[name], (
        f"docs/{name} is stale: python -m llmhost.reference"
    )
