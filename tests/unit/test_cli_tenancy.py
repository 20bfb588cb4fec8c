"""`llmhost keys` and `llmhost usage` against a real SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from llmhost.cli import app
from llmhost.gateway.store import AuditRecord, open_store

runner = CliRunner()


def invoke(store: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--store", store])
    return result.exit_code, result.stdout, result.stderr


def test_keys_lifecycle(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'k.db'}"
    code, out, _ = invoke(
        store,
        "keys",
        "create",
        "--tenant",
        "acme",
        "--rpm",
        "10",
        "--monthly-tokens",
        "5000",
        "--models",
        "a,b",
        "--expires",
        "30d",
    )
    assert code == 0 and "shown once" in out
    secret = next(w for w in out.split() if w.count("-") >= 2)
    prefix = "-".join(secret.split("-")[:2])
    code, quiet, _ = invoke(store, "keys", "create", "--tenant", "acme", "--quiet")
    assert code == 0 and quiet.strip().startswith("llmh-") and len(quiet.split()) == 1
    code, listed, _ = invoke(store, "keys", "list", "--json")
    rows = json.loads(listed)
    assert [r["tenant"] for r in rows] == ["acme", "acme"]
    assert rows[0]["models"] == ["a", "b"] and rows[0]["monthly_tokens"] == 5000
    assert secret not in listed and "hash" not in listed
    code, shown, _ = invoke(store, "keys", "show", prefix, "-o", "json")
    assert code == 0 and json.loads(shown)["rpm"] == 10
    assert json.loads(shown)["expires_at"].endswith("+00:00")  # ISO 8601, not epoch seconds
    code, table, _ = invoke(store, "keys", "show", prefix)
    assert code == 0 and f"prefix:         {prefix}" in table and "rpm:            10" in table
    assert invoke(store, "keys", "revoke", prefix)[0] == 0
    code, _, err = invoke(store, "keys", "revoke", prefix)
    assert code == 2 and "no active key" in err


def test_bad_key_options_are_one_line_errors(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'k.db'}"
    for args, message in (
        (["--tenant", "a b"], "tenant: 'a b': use letters"),
        (["--tenant", "a", "--rpm", "0"], "rpm: Input should be greater than or equal to 1"),
        (["--tenant", "a", "--rpm", str(2**40)], "rpm: Input should be less than or equal to"),
        (["--tenant", "a", "--expires", "soon"], "--expires 'soon'"),
        (["--tenant", "a", "--expires", "2001-01-01"], "must be in the future"),
    ):
        code, _, err = invoke(store, "keys", "create", *args)
        assert code == 2 and message in err and "Traceback" not in err
    assert invoke("mysql://x", "keys", "list")[0] == 2


def test_usage_prices_tokens_at_hosted_prices(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'u.db'}"
    store = open_store(store_url)
    now = time.time()
    store.add_audit(
        [
            AuditRecord(
                now - 3600,
                "p",
                "acme",
                "llama-3.1-8b",
                "r",
                200,
                1_000_000,
                1_000_000,
                10.0,
                100.0,
                None,
            ),
            AuditRecord(now - 60, "p", "acme", "llama-3.1-8b", "r", 429, 0, 0, None, 1.0, None),
            AuditRecord(
                now - 40 * 86400, "p", "acme", "llama-3.1-8b", "r", 200, 5, 5, None, 1.0, None
            ),
        ]
    )
    store.close()
    code, out, _ = invoke(store_url, "usage", "--since", "7d", "--hourly-usd", "2", "--json")
    report = json.loads(out)
    (row,) = report["rows"]
    assert (row["requests"], row["errors"], row["prompt_tokens"]) == (2, 1, 1_000_000)
    groq = next(c for c in report["hosted_cost_usd"]["llama-3.1-8b"] if c["provider"] == "groq")
    assert groq["usd"] == 0.13  # 1M input at $0.05 + 1M output at $0.08
    assert 1.9 < report["self_hosted_usd"] < 2.1  # one hour at $2/h
    code, table, _ = invoke(store_url, "usage", "--tenant", "acme")
    assert code == 0 and "llama-3.1-8b" in table and "groq" in table
