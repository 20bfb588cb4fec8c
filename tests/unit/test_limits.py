"""Rate limits, concurrency and budgets, the same cases on both backends: in-process and a real
Redis (started if installed but down; skipped loudly elsewhere, required under CI)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from llmhost.gateway.limits import Counters, Limits, duration, gcra
from llmhost.gateway.limits.memory import MemoryCounters
from tests.support.services import redis_url

Seed = Callable[[str, float], int]


def make(kind: str, seed: Seed) -> Counters:
    if kind == "memory":
        return MemoryCounters(seed)
    from llmhost.gateway.limits.redis_store import RedisCounters

    return RedisCounters(redis_url(), seed)


def limits(**kw: int | None) -> Limits:
    unique = secrets.token_hex(4)  # fresh keys in the shared Redis for every test
    base: dict[str, object] = {
        "key": f"llmh-{unique}", "tenant": f"t-{unique}", "rpm": None, "tpm": None,
        "max_concurrent": None, "monthly_tokens": None,
    }  # fmt: skip
    base.update(kw)
    return Limits(**base)  # type: ignore[arg-type]


def run(
    kind: str, scenario: Callable[[Counters], Awaitable[None]], seed: Seed = lambda t, s: 0
) -> None:
    async def main() -> None:
        counters = make(kind, seed)
        try:
            await scenario(counters)
        finally:
            await counters.close()

    uvloop.run(main())


BACKENDS = pytest.mark.parametrize("kind", ["memory", "redis"])


@BACKENDS
def test_rpm_admits_the_limit_at_once_then_refuses(kind: str) -> None:
    lim = limits(rpm=5)

    async def scenario(c: Counters) -> None:
        decisions = [await c.admit(lim, 1, str(i)) for i in range(8)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
        refused = decisions[5]
        assert refused.kind == "requests" and 11 < refused.retry_after_s <= 12.01
        assert refused.headers["x-ratelimit-limit-requests"] == "5"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert decisions[0].headers["x-ratelimit-remaining-requests"] == "4"

    run(kind, scenario)


@BACKENDS
def test_tokens_reserved_then_reconciled(kind: str) -> None:
    lim = limits(tpm=1000)

    async def scenario(c: Counters) -> None:
        assert (await c.admit(lim, 600, "a")).allowed
        second = await c.admit(lim, 600, "b")
        assert not second.allowed and second.kind == "tokens"
        await c.finish(lim, reserved=600, used=100, request_id="a")  # 500 handed back
        assert (await c.admit(lim, 600, "c")).allowed
        too_big = await c.admit(lim, 5000, "d")
        assert not too_big.allowed and "lower max_tokens" in too_big.message

    run(kind, scenario)


@BACKENDS
def test_a_refusal_consumes_nothing(kind: str) -> None:
    lim = limits(rpm=2, tpm=100)

    async def scenario(c: Counters) -> None:
        assert not (await c.admit(lim, 500, "big")).allowed  # tokens refuse it...
        assert (await c.admit(lim, 10, "a")).allowed  # ...and it used no request allowance
        assert (await c.admit(lim, 10, "b")).allowed

    run(kind, scenario)


@BACKENDS
def test_concurrency(kind: str) -> None:
    lim = limits(max_concurrent=2)

    async def scenario(c: Counters) -> None:
        assert (await c.admit(lim, 1, "a")).allowed
        assert (await c.admit(lim, 1, "b")).allowed
        third = await c.admit(lim, 1, "c")
        assert not third.allowed and third.kind == "concurrency"
        await c.finish(lim, 1, 1, "a")
        assert (await c.admit(lim, 1, "c")).allowed

    run(kind, scenario)


@BACKENDS
def test_monthly_budget_seeded_from_the_store(kind: str) -> None:
    lim = limits(monthly_tokens=1000)
    seen: list[str] = []

    def seed(tenant: str, since: float) -> int:
        seen.append(tenant)
        return 900  # already spent this month, per the audit ledger

    async def scenario(c: Counters) -> None:
        refused = await c.admit(lim, 200, "a")
        assert not refused.allowed and refused.kind == "budget"
        assert "900 of its 1000" in refused.message and refused.retry_after_s > 0
        assert (await c.admit(lim, 60, "b")).allowed
        await c.finish(lim, reserved=60, used=20, request_id="b")  # 920 spent
        assert (await c.admit(lim, 80, "c")).allowed  # exactly at the budget
        assert not (await c.admit(lim, 1, "d")).allowed
        assert seen == [lim.tenant]

    run(kind, scenario, seed)


def test_gcra_maths_and_durations() -> None:
    first = gcra(None, 100.0, 60, 1)
    assert first.allowed and first.tat == pytest.approx(101.0) and first.remaining == 59
    burst = gcra(160.0, 100.0, 60, 1)  # a full minute already queued
    assert not burst.allowed and burst.retry_after_s == pytest.approx(1.0)
    assert [duration(s) for s in (0.25, 6, 60, 61.2)] == ["250ms", "6s", "1m0s", "1m2s"]
