"""Where keys, tenants and the audit ledger live: SQLite by default, PostgreSQL for several
gateway replicas. `open_store` applies pending migrations."""

from __future__ import annotations

from llmhost.gateway.store.records import AuditRecord, KeyRecord, Tenant, UsageRow
from llmhost.gateway.store.sql import SqlStore, dialect_for
from llmhost.paths import data_dir

__all__ = [
    "AuditRecord",
    "KeyRecord",
    "SqlStore",
    "Tenant",
    "UsageRow",
    "default_url",
    "open_store",
]


def default_url() -> str:
    """The embedded default: a SQLite file in llmhost's data folder."""
    return f"sqlite:///{data_dir() / 'llmhost.db'}"


def open_store(url: str | None = None) -> SqlStore:
    """Connect to the store at `url` (default: the SQLite file) and bring its schema up to date."""
    store = SqlStore(dialect_for(url or default_url()))
    store.migrate()
    return store
