"""`llmhost usage`: honest rows. Every request is audited, refused ones too; those refused
before they named a model are counted apart, never a row without tenant or model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.gateway.store import AuditRecord, open_store

runner = CliRunner()


def _usage_store(tmp_path: Path, records: list[AuditRecord]) -> str:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    store = open_store(url)
    store.add_audit(records)
    store.close()
    return url


def _record(tenant: str | None, model: str, status: int = 200, tokens: int = 10) -> AuditRecord:
    prefix = f"llmh-{tenant}" if tenant else None
    return AuditRecord(
        time.time() - 60, prefix, tenant, model, None, status, tokens, tokens, None, 1.0, None
    )


def test_usage_has_no_phantom_rows(tmp_path: Path) -> None:
    url = _usage_store(
        tmp_path,
        [
            _record("acme", "llama-3.1-8b", tokens=1000),
            _record(None, "", status=401, tokens=0),  # a bad key: refused before a model
            _record(None, "", status=400, tokens=0),  # a body that is not JSON
            _record("acme", "no-such-model", status=404, tokens=0),  # a typo: an honest error row
        ],
    )
    data = json.loads(runner.invoke(app, ["usage", "-o", "json", "--store", url]).stdout)
    assert [(r["tenant"], r["model"]) for r in data["rows"]] == [
        ("acme", "llama-3.1-8b"),
        ("acme", "no-such-model"),
    ]
    assert data["unrouted_requests"] == 2 and "" not in data["hosted_cost_usd"]
    as_yaml = yaml.safe_load(runner.invoke(app, ["usage", "-o", "yaml", "--store", url]).stdout)
    assert {**as_yaml, "until": None} == {**data, "until": None}  # `until` is the time of asking
    table = runner.invoke(app, ["usage", "--store", url])
    assert table.exit_code == 0, table.output
    assert "(none)" not in table.stdout and "\n at hosted prices" not in table.stdout
    assert "2 request(s) refused before naming a model" in table.stdout
    assert "acme" in table.stdout and "no-such-model" in table.stdout


def test_usage_of_an_open_gateway_says_no_key(tmp_path: Path) -> None:
    url = _usage_store(tmp_path, [_record(None, "gemma-3-270m")])
    table = runner.invoke(app, ["usage", "--store", url])
    assert table.exit_code == 0 and "(no key)" in table.stdout and "gemma-3-270m" in table.stdout


def test_usage_with_nothing_to_show_says_so_in_one_line(tmp_path: Path) -> None:
    url = _usage_store(tmp_path, [])
    empty = runner.invoke(app, ["usage", "--store", url])
    assert empty.exit_code == 0
    assert empty.stdout.strip().splitlines() == ["no requests to a model recorded"]
    (tmp_path / "b").mkdir()
    url = _usage_store(tmp_path / "b", [_record(None, "", status=401, tokens=0)])
    only_refused = runner.invoke(app, ["usage", "--since", "7d", "--store", url])
    (line,) = only_refused.stdout.strip().splitlines()
    assert line.startswith("no requests to a model since ") and "1 request(s) refused" in line
