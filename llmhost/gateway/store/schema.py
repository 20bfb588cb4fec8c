"""The store's schema, as numbered migrations applied in order and recorded in the database.

Written once for both SQLite and PostgreSQL; `{id}` stands for each dialect's auto-increment key.
Times are Unix seconds (float), the same on both.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE tenants (
                name TEXT PRIMARY KEY,
                monthly_tokens BIGINT,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE api_keys (
                prefix TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL UNIQUE,
                tenant TEXT NOT NULL REFERENCES tenants(name),
                name TEXT,
                rpm INTEGER,
                tpm INTEGER,
                max_concurrent INTEGER,
                models TEXT,
                expires_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            """CREATE TABLE audit (
                id {id},
                ts DOUBLE PRECISION NOT NULL,
                key_prefix TEXT,
                tenant TEXT,
                model TEXT,
                replica TEXT,
                status INTEGER NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                ttft_ms DOUBLE PRECISION,
                duration_ms DOUBLE PRECISION NOT NULL,
                prompt_sha256 TEXT
            )""",
            "CREATE INDEX audit_tenant_ts ON audit (tenant, ts)",
            "CREATE INDEX audit_ts ON audit (ts)",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE admin_audit (
                id {id},
                ts DOUBLE PRECISION NOT NULL,
                actor TEXT NOT NULL,
                role TEXT,
                action TEXT NOT NULL,
                target TEXT,
                source TEXT,
                before_state TEXT,
                after_state TEXT,
                count INTEGER NOT NULL
            )""",
            "CREATE INDEX admin_audit_ts ON admin_audit (ts)",
            """CREATE TABLE admins (
                prefix TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL UNIQUE,
                role TEXT NOT NULL,
                name TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
        ],
    ),
]
