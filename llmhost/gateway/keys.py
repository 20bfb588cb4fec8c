"""API keys: made from 32 random bytes, shown once, stored only as a SHA-256 hash.

A key looks like `llmh-1a2b3c4d5e-<43 url-safe characters>`; the middle part is its public
prefix, which lists, logs and the audit record use to name it. SHA-256 (not a slow password
hash) is right here: the secret has 256 bits of entropy, so there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmhost.errors import UsageError
from llmhost.gateway.store import KeyRecord, SqlStore

KEY_PATTERN = re.compile(r"llmh-([0-9a-f]{10})-[A-Za-z0-9_-]{43}")
PREFIX_PATTERN = re.compile(r"llmh-[0-9a-f]{10}")
# Admin keys look the same with `llma-`: never confused with an API key, nor usable as one.
ADMIN_KEY_PATTERN = re.compile(r"llma-([0-9a-f]{10})-[A-Za-z0-9_-]{43}")
ADMIN_PREFIX_PATTERN = re.compile(r"llma-[0-9a-f]{10}")


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    """The public prefix of a well-formed key, or None if `key` is not one."""
    match = KEY_PATTERN.fullmatch(key)
    return f"llmh-{match[1]}" if match else None


def new_key(kind: str = "llmh") -> str:
    """A fresh random key (`llmh` for API keys, `llma` for admin keys)."""
    return f"{kind}-{secrets.token_hex(5)}-{secrets.token_urlsafe(32)}"


def admin_prefix_of(key: str) -> str | None:
    """The public prefix of a well-formed admin key, or None."""
    match = ADMIN_KEY_PATTERN.fullmatch(key)
    return f"llma-{match[1]}" if match else None


TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"
INT32 = 2**31 - 1  # the store's INTEGER columns
Limit = Annotated[int, Field(ge=1, le=INT32)]


class KeySpec(BaseModel):
    """A new key's tenant and limits: what `llmhost keys create` and POST /admin/keys take.

    Strict: a limit is a whole number from 1 (1.5, "5" and true are refused), unknown fields are
    refused, model names are names (a comma-separated string is not a list).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    tenant: str = Field(description="Team or customer: letters, digits, '.', '_', '-'.")
    name: Annotated[str, Field(max_length=200)] | None = Field(None, description="A label.")
    rpm: Limit | None = Field(None, description="Requests per minute.")
    tpm: Limit | None = Field(None, description="Tokens per minute (prompt + output).")
    max_concurrent: Limit | None = Field(None, description="Requests at once.")
    monthly_tokens: Annotated[int, Field(ge=1, le=10**15)] | None = Field(
        None, description="The tenant's token budget per calendar month (UTC)."
    )
    models: (
        Annotated[
            list[Annotated[str, Field(pattern=MODEL_PATTERN)]], Field(min_length=1, max_length=256)
        ]
        | None
    ) = Field(None, description="Models the key may use (default: all).")
    expires_at: float | None = Field(None, description="Unix time the key stops working.")

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: float | None) -> float | None:
        if value is not None and (not math.isfinite(value) or value <= time.time()):
            raise ValueError("must be in the future")
        return value

    @field_validator("tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if not re.fullmatch(TENANT_PATTERN, value):
            raise ValueError(f"{value[:80]!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        return value

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable text")
        return value


def key_spec(fields: dict[str, Any]) -> KeySpec:
    """`fields` as a KeySpec, or UsageError naming the first field that is wrong."""
    try:
        return KeySpec.model_validate(fields)
    except ValidationError as exc:
        raise UsageError(describe_validation(exc)) from None


def describe_validation(exc: ValidationError) -> str:
    """The first error of a pydantic validation as one line: 'field: problem'."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def create_key(store: SqlStore, tenant: str, **fields: Any) -> tuple[str, KeyRecord]:
    """Create a key for `tenant` (creating the tenant too); returns the secret and the record.

    `fields` are KeySpec's (rpm, tpm, ...), validated the same way as the admin API's.
    `monthly_tokens`, when given, sets the tenant's budget; otherwise an existing budget stays.
    """
    return create_from_spec(store, key_spec({"tenant": tenant, **fields}))


def create_from_spec(store: SqlStore, spec: KeySpec) -> tuple[str, KeyRecord]:
    """Create the key a validated spec describes."""
    store.set_tenant(spec.tenant, spec.monthly_tokens, keep_budget=spec.monthly_tokens is None)
    key = new_key()
    record = KeyRecord(
        prefix=prefix_of(key) or "",
        tenant=spec.tenant,
        name=spec.name,
        rpm=spec.rpm,
        tpm=spec.tpm,
        max_concurrent=spec.max_concurrent,
        models=tuple(spec.models) if spec.models else None,
        expires_at=spec.expires_at,
        created_at=time.time(),
    )
    store.add_key(record, hash_key(key))
    return key, record
