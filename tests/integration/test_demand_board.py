"""The scaler leader's demand board on a real Redis: each gateway's demand per model, summed
for the leader, forgotten once a gateway stops renewing it."""

from __future__ import annotations

import asyncio
import secrets

from llmhost.gateway.leader import RedisBoard
from tests.support.services import redis_url


def test_the_leader_reads_the_sum_of_the_other_gateways_demand() -> None:
    url = redis_url()

    async def run() -> None:
        prefix = f"llmhost-test:{secrets.token_hex(4)}:"
        a, b, c = (RedisBoard(url, prefix) for _ in range(3))
        try:
            await a.publish("gateway-a", {"gemma": 4.0}, ttl_s=5)
            await b.publish("gateway-b", {"gemma": 12.0, "llama": 1.5}, ttl_s=5)
            await c.publish("gateway-c", {"gemma": 2.0}, ttl_s=0.3)
            assert await a.others("gateway-a") == {"gemma": 14.0, "llama": 1.5}
            await asyncio.sleep(0.5)  # gateway-c stopped renewing: it no longer counts
            assert await a.others("gateway-a") == {"gemma": 12.0, "llama": 1.5}
            await b.publish("gateway-b", {}, ttl_s=5)  # nothing waits there any more
            assert await a.others("gateway-a") == {}
        finally:
            for board in (a, b, c):
                await board.close()

    asyncio.run(run())
