"""Real llama-server replicas: scale to zero and back, and a replica killed under load."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import openai
import pytest

from tests.integration.conftest import GEMMA, start_gateway, stop_gateway
from tests.support.processes import engine_pids

pytestmark = pytest.mark.integration
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_idles_to_zero_then_wakes_for_the_next_request(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = {"models": [{**GEMMA, "replicas": 0, "min_replicas": 0, "max_replicas": 1,
                          "idle_to_zero_s": 2, "parallel": 1, "context": 512}]}  # fmt: skip
    served = start_gateway(config, tmp_path_factory.mktemp("zero"))
    try:
        assert engine_pids(served.proc.pid) == []  # starts at zero
        client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        for _ in range(2):
            started = time.monotonic()
            reply = client.chat.completions.create(model="gemma-3-270m", messages=QUESTION,
                                                   max_tokens=4)  # fmt: skip
            assert reply.choices[0].message.content is not None  # held, not refused
            assert len(engine_pids(served.proc.pid)) == 1
            assert time.monotonic() - started < 30
            deadline = time.monotonic() + 20
            while engine_pids(served.proc.pid) and time.monotonic() < deadline:
                time.sleep(0.25)
            assert engine_pids(served.proc.pid) == []  # idle: back to zero
        log = served.log_text()
        assert "from 0 to 1 replicas" in log and "from 1 to 0 replicas: idle" in log
    finally:
        assert stop_gateway(served) == []


def test_a_replica_killed_under_load_fails_no_request(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = {"models": [{**GEMMA, "replicas": 2, "parallel": 2, "context": 512}]}
    served = start_gateway(config, tmp_path_factory.mktemp("kill"))

    async def load() -> list[str]:
        client = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)

        async def one(i: int) -> str:
            await asyncio.sleep(i * 0.05)
            reply = await client.chat.completions.create(
                model="gemma-3-270m", messages=QUESTION, max_tokens=48
            )
            return reply.choices[0].message.content or ""

        async def killer() -> None:
            await asyncio.sleep(0.4)
            os.kill(engine_pids(served.proc.pid)[0], signal.SIGKILL)

        *texts, _ = await asyncio.gather(*(one(i) for i in range(12)), killer())
        return texts

    try:
        texts = asyncio.run(load())
        assert len(texts) == 12  # every request that had not begun streaming succeeded
    finally:
        assert stop_gateway(served) == []
