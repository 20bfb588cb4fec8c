"""Prefix routing over two real llama-server replicas: requests that share a system prompt stay
on one replica (and hit its prompt cache), and a burst beyond that replica's bound spills over."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llmhost.gateway.store import open_store
from tests.integration.conftest import GEMMA, Served, start_gateway, stop_gateway

pytestmark = pytest.mark.integration
SYSTEM = "You are the support agent of a bicycle shop. " * 12
OTHER = "You translate English into French, one sentence at a time. " * 10


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    workdir = tmp_path_factory.mktemp("prefix")
    config = {
        "server": {"health_interval_s": 0.5},
        "models": [{**GEMMA, "replicas": 2, "parallel": 1, "threads": 1, "routing": "prefix"}],
    }
    served = start_gateway(config, workdir)
    yield served, workdir
    assert stop_gateway(served) == []


async def chat(url: str, system: str, question: str) -> int:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    try:
        reply = await client.chat.completions.create(
            model="gemma-3-270m",
            max_tokens=4,
            temperature=0,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        )
        assert reply.usage is not None
        return reply.usage.prompt_tokens
    finally:
        await client.close()


def replicas_used(workdir: Path, since: int) -> list[str]:
    records = open_store(f"sqlite:///{workdir / 'llmhost.db'}").audit()
    return [r.replica or "" for r in records][since:]


def test_equal_prefixes_stay_on_one_replica_and_a_burst_spills(served: tuple[Served, Path]) -> None:
    gateway, workdir = served
    for i in range(4):
        asyncio.run(chat(gateway.url, SYSTEM, f"Question {i}: do you fix brakes?"))
    asyncio.run(asyncio.sleep(0.3))  # the audit writer flushes within ~100 ms
    sequential = replicas_used(workdir, 0)
    assert len(sequential) == 4 and len(set(sequential)) == 1, sequential
    asyncio.run(chat(gateway.url, OTHER, "Good morning."))  # another prefix, another home
    asyncio.run(asyncio.sleep(0.3))
    assert len(replicas_used(workdir, 0)) == 5

    async def burst() -> None:  # 6 at once on one prefix: past its replica's bound
        await asyncio.gather(
            *(chat(gateway.url, SYSTEM, f"Burst {i}: open today?") for i in range(6))
        )

    asyncio.run(burst())
    asyncio.run(asyncio.sleep(0.3))
    spread = Counter(replicas_used(workdir, 5))
    assert sum(spread.values()) == 6
    assert len(spread) == 2, spread  # some spilled to the other replica
    assert spread[sequential[0]] > 6 / 2  # most stayed where the prefix is cached
