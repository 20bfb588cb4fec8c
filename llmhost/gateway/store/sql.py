"""The store on SQL: SQLite (WAL) for one gateway, PostgreSQL for several.

One implementation; the dialects differ only in how they connect, their parameter marker and
their auto-increment column. Every query is parameterised. Calls are synchronous: the gateway
makes them from worker threads (key look-ups, cached) and from the audit writer's thread, never
on the event loop. SQLite keeps one connection behind a lock; PostgreSQL a pool (psycopg-pool)
that checks connections before handing them out and reconnects after a server restart.

Errors come out as two kinds: `StoreUnavailable` (the database cannot be reached: try again
later) and `RecordRefused` (the database refused this data: retrying will not help).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

import orjson

from llmhost.errors import UsageError
from llmhost.gateway.errors import StoreUnavailable
from llmhost.gateway.store.records import (
    AdminEvent,
    AdminRecord,
    AuditRecord,
    KeyRecord,
    Tenant,
    UsageRow,
)
from llmhost.gateway.store.schema import MIGRATIONS

_KEY_COLUMNS = (
    "prefix, tenant, name, rpm, tpm, max_concurrent, models, expires_at, revoked_at, created_at"
)
_KEY_SELECT = (
    "SELECT k.prefix, k.tenant, k.name, k.rpm, k.tpm, k.max_concurrent, k.models, "
    "k.expires_at, k.revoked_at, k.created_at, t.monthly_tokens "
    "FROM api_keys k JOIN tenants t ON t.name = k.tenant"
)


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...


class RecordRefused(Exception):
    """The database refused the data itself (a NUL byte, a number out of range)."""


class Dialect:
    """How one database connects, hands out connections and names its errors."""

    name = ""
    marker = "?"
    id_column = ""

    def connection(self) -> AbstractContextManager[Any]:
        """An autocommit connection for one operation."""
        raise NotImplementedError

    def begin(self, conn: Any) -> None:
        """Start a transaction on an autocommit connection."""
        conn.execute("BEGIN")

    def translate(self, exc: Exception) -> Exception | None:
        """The store's error for a driver exception (None: not a database error)."""
        return None

    def close(self) -> None:
        """Close every connection."""


class SqliteDialect(Dialect):
    """SQLite in WAL mode: readers never block the writer; a commit survives a killed process."""

    name = "sqlite"
    marker = "?"
    id_column = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def connect(self) -> sqlite3.Connection:
        """Open (creating the folder) with WAL, synchronous=NORMAL and foreign keys on."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The one connection, held alone for the operation."""
        with self._lock:
            if self._conn is None:
                self._conn = self.connect()
            yield self._conn

    def translate(self, exc: Exception) -> Exception | None:
        """Integrity and data errors refuse the record; the rest mean the file is unusable."""
        if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
            return RecordRefused(str(exc))
        if isinstance(exc, sqlite3.Error):
            return StoreUnavailable(f"sqlite: {exc}")
        return None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresDialect(Dialect):
    """PostgreSQL through psycopg 3 and a psycopg-pool connection pool."""

    name = "postgresql"
    marker = "%s"
    id_column = "BIGSERIAL PRIMARY KEY"
    POOL_SIZE = 4
    WAIT_S = 5.0  # longest wait for a connection before the operation fails as unavailable

    def __init__(self, url: str) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=self.POOL_SIZE,
            kwargs={"autocommit": True, "connect_timeout": 5},
            check=ConnectionPool.check_connection,
            timeout=self.WAIT_S,
            open=False,
            name="llmhost-store",
        )
        try:
            self._pool.open(wait=True, timeout=self.WAIT_S)
        except Exception as exc:
            self._pool.close()
            raise UsageError(f"cannot connect to {_redact(url)}: {exc}".strip()) from None

    def connection(self) -> AbstractContextManager[Any]:
        """A checked connection from the pool, returned after the operation."""
        return self._pool.connection()

    def translate(self, exc: Exception) -> Exception | None:
        """Data and integrity errors refuse the record; connection trouble is an outage."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
            return RecordRefused(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout):
            return StoreUnavailable(f"postgresql: {str(exc).splitlines()[0] if str(exc) else exc}")
        return None

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()


def _redact(url: str) -> str:
    """A database URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def dialect_for(url: str) -> Dialect:
    """The dialect for a store URL: sqlite:///path or postgresql://..."""
    if url.startswith("sqlite:///"):
        return SqliteDialect(Path(url.removeprefix("sqlite:///")).expanduser())
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDialect(url)
    raise UsageError(f"store '{url}': expected sqlite:///PATH or postgresql://...")


class SqlStore:
    """Keys, tenants and the audit ledger in one SQL database."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def _sql(self, text: str) -> str:
        return text.replace("?", self.dialect.marker) if self.dialect.marker != "?" else text

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A connection for one operation, with driver errors turned into the store's own."""
        try:
            with self.dialect.connection() as conn:
                yield conn
        except Exception as exc:
            translated = self.dialect.translate(exc)
            if translated is None:
                raise
            raise translated from exc

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            cursor = conn.execute(self._sql(sql), params)
            return list(cursor.fetchall()) if cursor.description else []

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._connection() as conn:
            self.dialect.begin(conn)
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def migrate(self) -> int:
        """Apply the migrations not yet applied; returns the schema version now in force."""
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            current = int(row[0] or 0)
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement.replace("{id}", self.dialect.id_column))
                conn.execute(
                    self._sql("INSERT INTO schema_version (version) VALUES (?)"), (version,)
                )
                current = version
        return current

    # tenants
    def set_tenant(self, name: str, monthly_tokens: int | None, keep_budget: bool) -> None:
        """Create the tenant, or update its budget unless `keep_budget`."""
        if self.tenant(name) is None:
            self._rows(
                "INSERT INTO tenants (name, monthly_tokens, created_at) VALUES (?, ?, ?)",
                (name, monthly_tokens, time.time()),
            )
        elif not keep_budget:
            self._rows(
                "UPDATE tenants SET monthly_tokens = ? WHERE name = ?", (monthly_tokens, name)
            )

    def tenant(self, name: str) -> Tenant | None:
        """A tenant by name."""
        rows = self._rows("SELECT name, monthly_tokens FROM tenants WHERE name = ?", (name,))
        return Tenant(rows[0][0], rows[0][1]) if rows else None

    def tenants(self) -> list[Tenant]:
        """Every tenant, by name."""
        rows = self._rows("SELECT name, monthly_tokens FROM tenants ORDER BY name")
        return [Tenant(row[0], row[1]) for row in rows]

    # keys
    def add_key(self, record: KeyRecord, key_hash: str) -> None:
        """Store a new key's hash and settings."""
        models = ",".join(record.models) if record.models is not None else None
        self._rows(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}, key_hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.prefix,
                record.tenant,
                record.name,
                record.rpm,
                record.tpm,
                record.max_concurrent,
                models,
                record.expires_at,
                record.revoked_at,
                record.created_at,
                key_hash,
            ),
        )

    def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        """The key whose secret hashes to `key_hash`."""
        rows = self._rows(f"{_KEY_SELECT} WHERE k.key_hash = ?", (key_hash,))
        return _key(rows[0]) if rows else None

    def key(self, prefix: str) -> KeyRecord | None:
        """A key by its public prefix."""
        rows = self._rows(f"{_KEY_SELECT} WHERE k.prefix = ?", (prefix,))
        return _key(rows[0]) if rows else None

    def keys(self, tenant: str | None = None) -> list[KeyRecord]:
        """Every key, or a tenant's, oldest first."""
        if tenant is None:
            rows = self._rows(f"{_KEY_SELECT} ORDER BY k.created_at")
        else:
            rows = self._rows(f"{_KEY_SELECT} WHERE k.tenant = ? ORDER BY k.created_at", (tenant,))
        return [_key(row) for row in rows]

    def revoke(self, prefix: str, now: float | None = None) -> bool:
        """Revoke a key; False if there is no such key or it was revoked already."""
        found = self.key(prefix)
        if found is None or found.revoked_at is not None:
            return False
        self._rows(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix = ?", (now or time.time(), prefix)
        )
        return True

    # audit and usage
    def add_audit(self, records: Sequence[AuditRecord | AdminEvent]) -> None:
        """Append records of either trail in one transaction (committed when this returns)."""
        requests = [r for r in records if isinstance(r, AuditRecord)]
        admin = [r for r in records if isinstance(r, AdminEvent)]
        if not records:
            return
        with self._transaction() as conn:
            if requests:
                self._insert(conn, _AUDIT_INSERT, [_audit_row(r) for r in requests])
            if admin:
                self._insert(conn, _ADMIN_INSERT, [_admin_row(e) for e in admin])

    def _insert(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.dialect.name == "sqlite":
            conn.executemany(self._sql(sql), rows)
        else:
            with conn.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)

    def admin_audit(
        self, since: float = 0.0, action: str | None = None, target: str | None = None
    ) -> list[AdminEvent]:
        """The admin trail since a time, oldest first, optionally of one action or target."""
        sql = (
            "SELECT ts, actor, role, action, target, source, before_state, after_state, count "
            "FROM admin_audit WHERE ts >= ?"
        )
        params: list[Any] = [since]
        if action is not None:
            sql += " AND action = ?"
            params.append(action)
        if target is not None:
            sql += " AND target = ?"
            params.append(target)
        rows = self._rows(sql + " ORDER BY id", params)
        return [
            AdminEvent(r[0], r[1], r[2], r[3], r[4], r[5], _json(r[6]), _json(r[7]), r[8])
            for r in rows
        ]

    def purge_admin_audit(self, before: float) -> int:
        """Delete admin-trail entries older than `before` (its own retention)."""
        with self._connection() as conn:
            cursor = conn.execute(self._sql("DELETE FROM admin_audit WHERE ts < ?"), (before,))
            return int(cursor.rowcount or 0)

    # admins
    def add_admin(self, record: AdminRecord, key_hash: str) -> None:
        """Store a new admin principal's hash and role."""
        self._rows(
            "INSERT INTO admins (prefix, key_hash, role, name, created_at) VALUES (?, ?, ?, ?, ?)",
            (record.prefix, key_hash, record.role, record.name, record.created_at),
        )

    def admin_by_hash(self, key_hash: str) -> AdminRecord | None:
        """The admin whose secret hashes to `key_hash`."""
        rows = self._rows(f"{_ADMIN_SELECT} WHERE key_hash = ?", (key_hash,))
        return AdminRecord(*rows[0]) if rows else None

    def admins(self) -> list[AdminRecord]:
        """Every admin principal, oldest first."""
        return [AdminRecord(*row) for row in self._rows(f"{_ADMIN_SELECT} ORDER BY created_at")]

    def revoke_admin(self, prefix: str, now: float | None = None) -> bool:
        """Revoke an admin key; False if there is no such active admin."""
        rows = self._rows(f"{_ADMIN_SELECT} WHERE prefix = ? AND revoked_at IS NULL", (prefix,))
        if not rows:
            return False
        self._rows(
            "UPDATE admins SET revoked_at = ? WHERE prefix = ?", (now or time.time(), prefix)
        )
        return True

    def audit(self, since: float = 0.0) -> list[AuditRecord]:
        """Audit records since a time, oldest first."""
        rows = self._rows(
            "SELECT ts, key_prefix, tenant, model, replica, status, prompt_tokens, "
            "completion_tokens, ttft_ms, duration_ms, prompt_sha256 FROM audit "
            "WHERE ts >= ? ORDER BY id",
            (since,),
        )
        return [AuditRecord(*row) for row in rows]

    def tokens_since(self, tenant: str, since: float) -> int:
        """Prompt plus completion tokens a tenant used since a time (for its monthly budget)."""
        rows = self._rows(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM audit "
            "WHERE tenant = ? AND ts >= ?",
            (tenant, since),
        )
        return int(rows[0][0])

    def usage(self, tenant: str | None = None, since: float = 0.0) -> list[UsageRow]:
        """Requests, errors and tokens per tenant and model since a time."""
        sql = (
            "SELECT tenant, model, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            "SUM(prompt_tokens), SUM(completion_tokens), MIN(ts) FROM audit WHERE ts >= ?"
        )
        params: list[Any] = [since]
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        sql += " GROUP BY tenant, model ORDER BY tenant, model"
        return [
            UsageRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), float(r[6]))
            for r in self._rows(sql, params)
        ]

    def purge_audit(self, before: float) -> int:
        """Delete audit records older than `before` (retention); how many went."""
        with self._connection() as conn:
            cursor = conn.execute(self._sql("DELETE FROM audit WHERE ts < ?"), (before,))
            return int(cursor.rowcount or 0)

    def close(self) -> None:
        """Close the connections."""
        self.dialect.close()


def _key(row: tuple[Any, ...]) -> KeyRecord:
    models = tuple(m for m in row[6].split(",") if m) if row[6] is not None else None
    return KeyRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], models, row[7], row[8], row[9], row[10]
    )


_AUDIT_INSERT = (
    "INSERT INTO audit (ts, key_prefix, tenant, model, replica, status, prompt_tokens, "
    "completion_tokens, ttft_ms, duration_ms, prompt_sha256) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADMIN_INSERT = (
    "INSERT INTO admin_audit (ts, actor, role, action, target, source, before_state, "
    "after_state, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ADMIN_SELECT = "SELECT prefix, role, name, created_at, revoked_at FROM admins"


def _audit_row(r: AuditRecord) -> tuple[Any, ...]:
    return (
        r.ts,
        r.key_prefix,
        r.tenant,
        r.model,
        r.replica,
        r.status,
        r.prompt_tokens,
        r.completion_tokens,
        r.ttft_ms,
        r.duration_ms,
        r.prompt_sha256,
    )


def _admin_row(e: AdminEvent) -> tuple[Any, ...]:
    before = orjson.dumps(e.before).decode() if e.before is not None else None
    after = orjson.dumps(e.after).decode() if e.after is not None else None
    return (e.ts, e.actor, e.role, e.action, e.target, e.source, before, after, e.count)


def _json(text: str | None) -> dict[str, Any] | None:
    return orjson.loads(text) if text else None
