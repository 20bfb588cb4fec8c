"""`llmhost catalog KIND`: every row with its source and date; filters; clear errors."""

import json

import pytest
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.errors import UsageError
from llmhost.plan.catalog import Catalog
from llmhost.plan.catalog_view import KINDS, Filters, catalog_rows


@pytest.mark.parametrize("kind", KINDS)
def test_every_row_has_source_and_date(catalog: Catalog, kind: str) -> None:
    rows = catalog_rows(catalog, kind, Filters())
    assert rows
    assert all(r["source"] and r["as_of"] for r in rows)


def test_filters_narrow_the_rows(catalog: Catalog) -> None:
    rows = catalog_rows(catalog, "prices", Filters(gpu="H200", tier="on_demand"))
    assert (
        rows and {r["gpu"] for r in rows} == {"h200"} and {r["tier"] for r in rows} == {"on_demand"}
    )
    expected = [p for p in catalog.gpu_prices if p.gpu == "h200" and p.tier == "on_demand"]
    assert len(rows) == len(expected)
    apis = catalog_rows(catalog, "apis", Filters(model="llama-3.1-8b"))
    assert apis and all(r["model"] == "llama-3.1-8b" for r in apis)
    with pytest.raises(UsageError, match="--tier does not filter apis"):
        catalog_rows(catalog, "apis", Filters(tier="spot"))
    with pytest.raises(UsageError, match="unknown catalog kind"):
        catalog_rows(catalog, "modles", Filters())


def test_cli_json_and_table() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["catalog", "prices", "--provider", "coreweave", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows and all(r["provider"] == "coreweave" for r in rows)
    table = runner.invoke(app, ["catalog", "checkpoints", "--model", "llama-3.1-70b"])
    assert table.exit_code == 0 and "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4" in (
        table.output
    )
    bad = runner.invoke(app, ["catalog", "nope"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
