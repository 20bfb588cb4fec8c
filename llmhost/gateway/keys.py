"""API keys: made from 32 random bytes, shown once, stored only as a SHA-256 hash.

A key looks like `llmh-1a2b3c4d5e-<43 url-safe characters>`; the middle part is its public
prefix, which lists, logs and the audit record use to name it. SHA-256 (not a slow password
hash) is right here: the secret has 256 bits of entropy, so there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Sequence

from llmhost.errors import UsageError
from llmhost.gateway.store import KeyRecord, SqlStore

KEY_PATTERN = re.compile(r"llmh-([0-9a-f]{10})-[A-Za-z0-9_-]{43}")
PREFIX_PATTERN = re.compile(r"llmh-[0-9a-f]{10}")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    """The public prefix of a well-formed key, or None if `key` is not one."""
    match = KEY_PATTERN.fullmatch(key)
    return f"llmh-{match[1]}" if match else None


def new_key() -> str:
    """A fresh random key."""
    return f"llmh-{secrets.token_hex(5)}-{secrets.token_urlsafe(32)}"


def create_key(
    store: SqlStore,
    tenant: str,
    *,
    name: str | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    max_concurrent: int | None = None,
    monthly_tokens: int | None = None,
    models: Sequence[str] | None = None,
    expires_at: float | None = None,
) -> tuple[str, KeyRecord]:
    """Create a key for `tenant` (creating the tenant too); returns the secret and the record.

    `monthly_tokens`, when given, sets the tenant's budget; otherwise an existing budget stays.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", tenant):
        raise UsageError(f"tenant '{tenant}': use letters, digits, '.', '_' or '-' (max 64)")
    for label, value in (("rpm", rpm), ("tpm", tpm), ("max-concurrent", max_concurrent),
                         ("monthly-tokens", monthly_tokens)):  # fmt: skip
        if value is not None and value < 1:
            raise UsageError(f"--{label} must be at least 1")
    if expires_at is not None and expires_at <= time.time():
        raise UsageError("--expires must be in the future")
    store.set_tenant(tenant, monthly_tokens, keep_budget=monthly_tokens is None)
    key = new_key()
    record = KeyRecord(
        prefix=prefix_of(key) or "",
        tenant=tenant,
        name=name,
        rpm=rpm,
        tpm=tpm,
        max_concurrent=max_concurrent,
        models=tuple(models) if models else None,
        expires_at=expires_at,
        created_at=time.time(),
    )
    store.add_key(record, hash_key(key))
    return key, record
