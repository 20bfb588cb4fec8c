"""Per-key request and token rates, concurrency, and per-tenant monthly token budgets.

Rates use GCRA (the generic cell rate algorithm): one "theoretical arrival time" per key and
kind, so a limit of N per minute admits N at once from idle and then one every 60/N seconds,
never the 2N a fixed window lets through at its boundary. Token limits reserve the request's
estimated prompt tokens plus its `max_tokens` at admission and reconcile to the engine's actual
usage at the end, so a budget is overrun by at most one request's reservation.

Two implementations behind one interface: in-process (one gateway) and Redis (several gateways
sharing exact counters through one Lua script, with Redis' clock as the only clock).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

PERIOD_S = 60.0


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one request: its key's and its tenant's."""

    key: str  # public prefix
    tenant: str
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    monthly_tokens: int | None


@dataclass
class Decision:
    """Whether a request may go ahead and, either way, what the rate-limit headers say."""

    allowed: bool
    kind: str = ""  # requests, tokens, concurrency, budget
    message: str = ""
    retry_after_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Gcra:
    """The outcome of one GCRA check."""

    allowed: bool
    tat: float  # the new theoretical arrival time if allowed, else the current one
    retry_after_s: float
    remaining: int
    reset_s: float


def gcra(tat: float | None, now: float, limit: int, cost: float) -> Gcra:
    """Check `cost` units against `limit` per minute given the stored arrival time `tat`."""
    interval = PERIOD_S / limit
    start = max(tat if tat is not None else now, now)
    new_tat = start + cost * interval
    allow_at = new_tat - PERIOD_S
    if allow_at > now + 1e-9:
        remaining = max(0, math.floor((now + PERIOD_S - start) / interval))
        return Gcra(False, start, allow_at - now, remaining, start - now)
    remaining = max(0, math.floor((now + PERIOD_S - new_tat) / interval))
    return Gcra(True, new_tat, 0.0, remaining, new_tat - now)


_month: tuple[float, float] = (0.0, -1.0)  # (start of the month cached, when it ends)


def month_start(now: float | None = None) -> float:
    """Unix time of the start of the current calendar month, UTC (the current month's is
    cached until it ends: every admission asks)."""
    global _month
    if now is None:
        now = time.time()
        if _month[0] <= now < _month[1]:
            return _month[0]
        start = _calendar_month(now)
        _month = (start, _calendar_month(start + 32 * 86400))
        return start
    return _calendar_month(now)


def _calendar_month(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def duration(seconds: float) -> str:
    """A reset time the way OpenAI writes it: '6s', '1m0s', '250ms'."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def rate_headers(limits: Limits, requests: Gcra | None, tokens: Gcra | None) -> dict[str, str]:
    """x-ratelimit-* headers for the limits that are set."""
    headers: dict[str, str] = {}
    for kind, limit, result in (("requests", limits.rpm, requests), ("tokens", limits.tpm, tokens)):
        if limit and result is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(result.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = duration(result.reset_s)
    return headers


def refuse(
    kind: str,
    limits: Limits,
    tokens: int,
    retry_after_s: float,
    headers: dict[str, str],
    spent: int | str = "?",
) -> Decision:
    """A refusal by the limit of `kind` (requests, tokens, concurrency, budget), explained."""
    if kind == "requests":
        message = f"over {limits.rpm} requests per minute"
    elif kind == "tokens" and limits.tpm is not None and tokens > limits.tpm:
        message = (
            f"the request reserves {tokens} tokens, more than the key's {limits.tpm} "
            "per minute; lower max_tokens"
        )
        retry_after_s = PERIOD_S
    elif kind == "tokens":
        message = f"over {limits.tpm} tokens per minute"
    elif kind == "concurrency":
        message = f"over {limits.max_concurrent} concurrent requests"
        retry_after_s = 1.0
    else:
        message = (
            f"tenant '{limits.tenant}' has used {spent} of its {limits.monthly_tokens} "
            "monthly tokens"
        )
    return Decision(False, kind, message, retry_after_s, headers)


def until_next_month(now: float) -> float:
    """Seconds until the next calendar month (UTC), when monthly budgets reset."""
    return month_start(month_start(now) + 32 * 86400) - now


class Counters(Protocol):
    """Where limit state lives: this process, or Redis for several gateways."""

    async def admit(self, limits: Limits, tokens: int, request_id: str) -> Decision:
        """Admit a request reserving `tokens`, or say which limit stops it and for how long."""
        ...

    async def finish(self, limits: Limits, reserved: int, used: int, request_id: str) -> None:
        """Release the request's concurrency slot and correct its token reservation."""
        ...

    def finish_now(self, limits: Limits, reserved: int, used: int, request_id: str) -> bool:
        """`finish` at once when it needs no I/O (in-process state); False when it must be
        awaited (then nothing was done)."""
        ...

    async def inflight(self, key: str) -> int:
        """Concurrency slots the key (by its prefix) holds now."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
