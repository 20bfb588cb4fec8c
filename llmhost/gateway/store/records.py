"""The values the store keeps: tenants, API keys (hashes only), audit records, usage rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Tenant:
    """A team or customer; keys belong to one. The budget is tokens per calendar month (UTC)."""

    name: str
    monthly_tokens: int | None


@dataclass(frozen=True)
class KeyRecord:
    """An API key as stored: its public prefix and limits, never its secret."""

    prefix: str
    tenant: str
    name: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    models: tuple[str, ...] | None = None  # None: every model
    expires_at: float | None = None
    revoked_at: float | None = None
    created_at: float = 0.0
    monthly_tokens: int | None = None  # the tenant's budget, read with the key

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (it holds no secret and no hash)."""
        data = asdict(self)
        data["models"] = list(self.models) if self.models is not None else None
        return data

    def refusal(self, now: float) -> str | None:
        """Why this key may not be used at `now`, or None when it may."""
        if self.revoked_at is not None:
            return "the API key has been revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "the API key has expired"
        return None


@dataclass(frozen=True)
class AuditRecord:
    """One finished request: who, what, how it went. Never prompt or completion text."""

    ts: float
    key_prefix: str | None
    tenant: str | None
    model: str
    replica: str | None
    status: int
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    duration_ms: float
    prompt_sha256: str | None


@dataclass(frozen=True)
class UsageRow:
    """Totals for one tenant and model over a period."""

    tenant: str | None
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    first_ts: float  # the earliest request counted


@dataclass(frozen=True)
class AdminEvent:
    """One entry of the admin trail: who did what to what, when and from where. `before` and
    `after` describe the target's change (never a secret or a key hash); `count` > 1 for a
    summary of repeated authentication failures."""

    ts: float
    actor: str  # admin key prefix, "env" (LLMHOST_ADMIN_KEY), "oidc:<subject>", "cli:<user>"
    role: str | None
    action: str  # auth_failure, key_created, key_revoked, budget_changed, role_changed, ...
    target: str | None  # a key prefix, tenant or admin prefix
    source: str | None  # the client address, or "cli"
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    count: int = 1


@dataclass(frozen=True)
class AdminRecord:
    """An admin principal as stored: its public prefix and role, never its secret."""

    prefix: str
    role: str
    name: str | None
    created_at: float
    revoked_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (no secret, no hash)."""
        return asdict(self)
