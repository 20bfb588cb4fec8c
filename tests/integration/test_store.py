"""The store on SQLite and on the real local PostgreSQL: migrations, keys, the audit ledger."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmhost.gateway.keys import create_key, hash_key
from llmhost.gateway.store import AuditRecord, SqlStore, open_store
from tests.support.services import postgres_url

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        db = open_store(f"sqlite:///{tmp_path / 'llmhost.db'}")
    else:
        import psycopg

        schema = f"t_{secrets.token_hex(4)}"  # each test in its own schema of the shared server
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        db = open_store(f"{postgres_url()}?options=-csearch_path%3D{schema}")
    yield db
    db.close()


def audit(
    tenant: str, model: str, status: int = 200, tokens: int = 10, ts: float | None = None
) -> AuditRecord:
    return AuditRecord(
        ts or time.time(),
        "llmh-0123456789",
        tenant,
        model,
        "r-1",
        status,
        tokens,
        tokens,
        12.5,
        40.0,
        "ab" * 32,
    )


def test_migrations_are_versioned_and_idempotent(store: SqlStore) -> None:
    assert store.migrate() == 2
    assert store.migrate() == 2


def test_keys_are_stored_as_hashes_with_the_tenant_budget(store: SqlStore) -> None:
    secret, record = create_key(store, "acme", rpm=5, monthly_tokens=1000, models=["m1", "m2"])
    found = store.key_by_hash(hash_key(secret))
    assert found is not None and found.prefix == record.prefix
    assert found.models == ("m1", "m2") and found.rpm == 5 and found.monthly_tokens == 1000
    assert store.key_by_hash(hash_key(secret + "x")) is None
    create_key(store, "acme")  # a second key keeps the tenant's budget
    assert store.tenant("acme").monthly_tokens == 1000  # type: ignore[union-attr]
    assert [k.tenant for k in store.keys("acme")] == ["acme", "acme"]
    assert store.revoke(record.prefix) and not store.revoke(record.prefix)
    assert store.key(record.prefix).refusal(time.time()) == "the API key has been revoked"  # type: ignore[union-attr]


def test_hostile_strings_are_data_not_sql(store: SqlStore) -> None:
    evil = "x' OR '1'='1'; DROP TABLE api_keys; --"
    assert store.key_by_hash(evil) is None
    assert store.key(evil) is None
    store.add_audit([audit(evil, evil)])
    assert store.usage(evil)[0].model == evil
    assert store.keys() == []  # the table is still there


def test_audit_usage_budget_and_retention(store: SqlStore) -> None:
    old = time.time() - 40 * 86400
    store.add_audit(
        [
            audit("a", "m", ts=old),
            audit("a", "m"),
            audit("a", "m", status=429, tokens=0),
            audit("b", "m", tokens=5),
        ]
    )
    rows = {(r.tenant, r.model): r for r in store.usage()}
    assert rows[("a", "m")].requests == 3 and rows[("a", "m")].errors == 1
    assert rows[("a", "m")].prompt_tokens == 20 and rows[("b", "m")].completion_tokens == 5
    assert store.tokens_since("a", time.time() - 86400) == 20
    assert [r.tenant for r in store.usage("b")] == ["b"]
    assert store.purge_audit(time.time() - 30 * 86400) == 1
    assert len(store.audit()) == 3
