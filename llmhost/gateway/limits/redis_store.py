"""Limit state in Redis, shared exactly by several gateway replicas.

One Lua script checks every limit and, only if all allow, records the request: atomic across
replicas, with Redis' own clock (`TIME`) so replicas' clocks never disagree. The GCRA maths is
the same as `limits.gcra`; the script returns floats as strings (Redis would truncate them).

Outages: a Redis that cannot be reached makes admission raise `StoreUnavailable` (the gateway
fails closed, with 503 and Retry-After); the client reconnects by itself once Redis is back, and
reloads the scripts a restarted Redis has forgotten. A request that ends during an outage keeps
retrying its release in the background; its concurrency lease, as long as the longest request
may last (`lease_s`), frees the slot by itself if Redis stays away longer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmhost.gateway.errors import StoreUnavailable
from llmhost.gateway.limits import (
    PERIOD_S,
    Decision,
    Gcra,
    Limits,
    month_start,
    rate_headers,
    refuse,
    until_next_month,
)

ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local period = tonumber(ARGV[8])
local function gcra(key, limit, cost)
  if limit <= 0 then return nil end
  local interval = period / limit
  local start = tonumber(redis.call('GET', key) or now)
  if start < now then start = now end
  local new_tat = start + cost * interval
  local allow_at = new_tat - period
  if allow_at > now + 1e-9 then
    return {0, start, allow_at - now, math.max(0, math.floor((now + period - start) / interval)),
            start - now}
  end
  return {1, new_tat, 0, math.max(0, math.floor((now + period - new_tat) / interval)),
          new_tat - now}
end
local function out(r)
  if r == nil then return {'', '', '', '', ''} end
  return {tostring(r[1]), string.format('%.6f', r[2]), string.format('%.6f', r[3]),
          tostring(r[4]), string.format('%.6f', r[5])}
end
local rpm, tpm, maxc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local budget, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local req = gcra(KEYS[1], rpm, 1)
local tok = gcra(KEYS[2], tpm, cost)
local verdict = 'ok'
if req ~= nil and req[1] == 0 then verdict = 'requests'
elseif tok ~= nil and tok[1] == 0 then verdict = 'tokens'
else
  if maxc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    if redis.call('ZCARD', KEYS[3]) >= maxc then verdict = 'concurrency' end
  end
  if verdict == 'ok' and budget >= 0 then
    local used = redis.call('GET', KEYS[4])
    if not used then verdict = 'seed'
    elseif tonumber(used) + cost > budget then verdict = 'budget:' .. used end
  end
end
if verdict == 'ok' then
  if req ~= nil then
    local ttl = math.ceil((req[2] - now) * 1000) + 1000
    redis.call('SET', KEYS[1], string.format('%.6f', req[2]), 'PX', ttl)
  end
  if tok ~= nil then
    local ttl = math.ceil((tok[2] - now) * 1000) + 1000
    redis.call('SET', KEYS[2], string.format('%.6f', tok[2]), 'PX', ttl)
  end
  if maxc > 0 then redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[6]) end
  if budget >= 0 then redis.call('INCRBY', KEYS[4], cost) end
end
local r, k = out(req), out(tok)
return {verdict, r[1], r[2], r[3], r[4], r[5], k[1], k[2], k[3], k[4], k[5],
        string.format('%.6f', now)}
"""

FINISH = """
redis.call('ZREM', KEYS[2], ARGV[3])
local delta = tonumber(ARGV[2])
local tpm = tonumber(ARGV[1])
if tpm > 0 then
  local tat = redis.call('GET', KEYS[1])
  if tat then
    local ttl = redis.call('PTTL', KEYS[1])
    local new = tonumber(tat) + delta * tonumber(ARGV[4]) / tpm
    redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX', math.max(ttl, 1000))
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCRBY', KEYS[3], delta) end
return 1
"""

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
BUDGET_TTL_S = 40 * 86400
LEASE_S = 660.0  # default lease: the default total timeout (600 s) and a margin
TIMEOUT_S = 2.0  # a Redis call slower than this counts as an outage
FINISH_RETRY_S = (0.5, 1, 2, 4, 8, 15, 30, 60)  # pauses between tries to release after an outage

log = logging.getLogger("llmhost.limits")


class RedisCounters:
    """Counters in Redis under `llmhost:` keys."""

    def __init__(
        self, url: str, budget_seed: Callable[[str, float], int], lease_s: float = LEASE_S
    ) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(
            url,
            decode_responses=True,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            health_check_interval=5,
        )
        self._admit = self._redis.register_script(ADMIT)
        self._finish = self._redis.register_script(FINISH)
        self._seed = budget_seed
        self.lease_s = lease_s

    def _keys(self, limits: Limits, month: float) -> list[str]:
        return [
            f"llmhost:rate:{limits.key}:requests",
            f"llmhost:rate:{limits.key}:tokens",
            f"llmhost:inflight:{limits.key}",
            f"llmhost:budget:{limits.tenant}:{int(month)}",
        ]

    async def admit(self, limits: Limits, tokens: int, request_id: str) -> Decision:
        """Run the admission script; seed the tenant's budget from the store on first use."""
        month = month_start()
        keys = self._keys(limits, month)
        budget = limits.monthly_tokens if limits.monthly_tokens is not None else -1
        args: list[str | int | float] = [
            limits.rpm or 0,
            limits.tpm or 0,
            limits.max_concurrent or 0,
            budget,
            tokens,
            request_id,
            self.lease_s,
            PERIOD_S,
        ]
        try:
            for _ in range(2):
                reply = await self._admit(keys=keys, args=args)
                if reply[0] != "seed":
                    break
                used = await asyncio.to_thread(self._seed, limits.tenant, month)
                await self._redis.set(keys[3], used, nx=True, ex=BUDGET_TTL_S)
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        verdict = reply[0]
        requests, tokens_check = _gcra(reply[1:6]), _gcra(reply[6:11])
        headers = rate_headers(limits, requests, tokens_check)
        now = float(reply[11])
        if verdict == "ok":
            return Decision(True, headers=headers)
        retry = {"requests": requests, "tokens": tokens_check}.get(verdict)
        if verdict in ("requests", "tokens") and retry is not None:
            return refuse(verdict, limits, tokens, retry.retry_after_s, headers)
        if verdict == "concurrency":
            return refuse("concurrency", limits, tokens, 1.0, headers)
        spent = verdict.partition(":")[2] or "?"
        return refuse("budget", limits, tokens, until_next_month(now), headers, spent)

    async def finish(self, limits: Limits, reserved: int, used: int, request_id: str) -> None:
        """Free the slot and correct the reservation, in one script; while Redis is away,
        keep trying (in the background task that called this) until the lease would expire."""
        keys = self._keys(limits, month_start())
        script_keys = [keys[1], keys[2], keys[3]]
        args: list[str | int | float] = [limits.tpm or 0, used - reserved, request_id, PERIOD_S]
        waited = 0.0
        for pause in (*FINISH_RETRY_S, None):
            try:
                await self._finish(keys=script_keys, args=args)
                return
            except REDIS_DOWN as exc:
                if pause is None or waited >= self.lease_s:
                    log.error(
                        "release of request %s lost (redis: %s); its lease expires", request_id, exc
                    )
                    return
            await asyncio.sleep(pause)
            waited += pause

    def finish_now(self, limits: Limits, reserved: int, used: int, request_id: str) -> bool:
        """Redis is always awaited."""
        return False

    async def inflight(self, key: str) -> int:
        """Unexpired leases held by `key`."""
        try:
            now = float((await self._redis.time())[0])
            slots = f"llmhost:inflight:{key}"
            return int(await self._redis.zcount(slots, now, "+inf"))
        except REDIS_DOWN as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _gcra(fields: list[str]) -> Gcra | None:
    if not fields[0]:
        return None
    return Gcra(
        fields[0] == "1", float(fields[1]), float(fields[2]), int(fields[3]), float(fields[4])
    )
