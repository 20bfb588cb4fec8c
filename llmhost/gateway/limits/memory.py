"""Limit state in this process: exact for one gateway, and the default."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from llmhost.gateway.limits import (
    PERIOD_S,
    Decision,
    Limits,
    gcra,
    month_start,
    rate_headers,
    refuse,
    until_next_month,
)

BudgetSeed = Callable[[str, float], int]  # tokens a tenant used since a time (from the store)


class MemoryCounters:
    """GCRA arrival times, in-flight counts and month-to-date budget use, in dictionaries."""

    def __init__(self, budget_seed: BudgetSeed) -> None:
        self._seed = budget_seed
        self._tat: dict[tuple[str, str], float] = {}
        self._inflight: dict[str, int] = {}
        self._budget: dict[tuple[str, float], int] = {}

    async def admit(self, limits: Limits, tokens: int, request_id: str) -> Decision:
        """All-or-nothing: a request is admitted only if every limit allows it."""
        month = month_start()
        if limits.monthly_tokens is not None and (limits.tenant, month) not in self._budget:
            used = await asyncio.to_thread(self._seed, limits.tenant, month)
            self._budget.setdefault((limits.tenant, month), used)
        now = time.time()
        requests = tokens_check = None
        if limits.rpm:
            requests = gcra(self._tat.get((limits.key, "r")), now, limits.rpm, 1)
        if limits.tpm:
            tokens_check = gcra(self._tat.get((limits.key, "t")), now, limits.tpm, tokens)
        headers = rate_headers(limits, requests, tokens_check)
        if requests is not None and not requests.allowed:
            return refuse("requests", limits, tokens, requests.retry_after_s, headers)
        if tokens_check is not None and not tokens_check.allowed:
            return refuse("tokens", limits, tokens, tokens_check.retry_after_s, headers)
        inflight = self._inflight.get(limits.key, 0)
        if limits.max_concurrent and inflight >= limits.max_concurrent:
            return refuse("concurrency", limits, tokens, 1.0, headers)
        if limits.monthly_tokens is not None:
            used = self._budget[(limits.tenant, month)]
            if used + tokens > limits.monthly_tokens:
                return refuse("budget", limits, tokens, until_next_month(now), headers, used)
            self._budget[(limits.tenant, month)] = used + tokens
        if requests is not None:
            self._tat[(limits.key, "r")] = requests.tat
        if tokens_check is not None:
            self._tat[(limits.key, "t")] = tokens_check.tat
        self._inflight[limits.key] = inflight + 1
        return Decision(True, headers=headers)

    async def finish(self, limits: Limits, reserved: int, used: int, request_id: str) -> None:
        """Free the slot; move the token GCRA and the budget by (used - reserved)."""
        self.finish_now(limits, reserved, used, request_id)

    def finish_now(self, limits: Limits, reserved: int, used: int, request_id: str) -> bool:
        """In memory, finishing never waits."""
        self._inflight[limits.key] = max(0, self._inflight.get(limits.key, 1) - 1)
        delta = used - reserved
        if limits.tpm and (limits.key, "t") in self._tat:
            self._tat[(limits.key, "t")] += delta * PERIOD_S / limits.tpm
        month = month_start()
        if (limits.tenant, month) in self._budget:
            self._budget[(limits.tenant, month)] += delta
        return True

    async def inflight(self, key: str) -> int:
        """Slots held by `key`."""
        return self._inflight.get(key, 0)

    async def close(self) -> None:
        """Nothing to release."""
