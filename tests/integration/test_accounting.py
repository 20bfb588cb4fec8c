"""Honest accounting against the real engine: the reservation counts the prompt with
llama-server's own tokenizer (digits are a token each for Gemma, 3-4x the old bytes / 4
estimate), and a stream the client cuts is charged what reached it, counted by that tokenizer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from llmhost.gateway.keys import create_key
from llmhost.gateway.store import open_store
from tests.integration.conftest import GEMMA, Served, start_gateway, stop_gateway

pytestmark = pytest.mark.integration
DIGITS = "7" * 400  # Gemma's tokenizer splits digits: 400 tokens, 100 by bytes / 4


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    workdir = tmp_path_factory.mktemp("accounting")
    config = {
        "server": {"auth": "keys", "store_url": f"sqlite:///{workdir / 'llmhost.db'}"},
        "models": [{**GEMMA, "replicas": 1, "parallel": 2, "threads": 2}],
    }
    served = start_gateway(config, workdir)
    yield served, workdir
    stop_gateway(served)


def key_for(workdir: Path, tenant: str, budget: int) -> str:
    store = open_store(f"sqlite:///{workdir / 'llmhost.db'}")
    try:
        return create_key(store, tenant, monthly_tokens=budget)[0]
    finally:
        store.close()


def used(workdir: Path, tenant: str) -> int:
    time.sleep(0.3)
    store = open_store(f"sqlite:///{workdir / 'llmhost.db'}")
    try:
        return store.tokens_since(tenant, 0)
    finally:
        store.close()


def test_the_reservation_counts_digits_with_the_engines_tokenizer(
    keyed: tuple[Served, Path],
) -> None:
    served, workdir = keyed
    messages = [{"role": "user", "content": DIGITS}]
    # 400 prompt tokens do not fit a 300-token budget: refused before the engine runs (the old
    # estimate, 100 + max_tokens, admitted it and overran the budget by the difference).
    small = openai.OpenAI(
        base_url=served.url + "/v1", api_key=key_for(workdir, "small", 300), max_retries=0
    )
    with pytest.raises(openai.RateLimitError) as refused:
        small.chat.completions.create(model="gemma-3-270m", messages=messages, max_tokens=8)
    assert refused.value.code == "insufficient_quota"
    assert used(workdir, "small") == 0
    # With room for it, the engine's own count is within the reservation.
    roomy = openai.OpenAI(
        base_url=served.url + "/v1", api_key=key_for(workdir, "roomy", 2000), max_retries=0
    )
    reply = roomy.chat.completions.create(model="gemma-3-270m", messages=messages, max_tokens=8)
    assert reply.usage is not None and reply.usage.prompt_tokens >= 400
    assert used(workdir, "roomy") == reply.usage.total_tokens


def test_a_cut_stream_is_charged_the_tokens_that_reached_the_client(
    keyed: tuple[Served, Path],
) -> None:
    served, workdir = keyed
    key = key_for(workdir, "cutter", 100_000)
    body = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "Count from one to one hundred."}],
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    received = 0
    with requests.post(
        served.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=60,
    ) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith(b"data:") and b'"content"' in line:
                received += 1
            if received >= 10:
                break  # the client goes away mid-stream, long before the usage chunk
    time.sleep(1.0)
    charged = used(workdir, "cutter")
    assert charged >= 10 + 14  # at least the tokens seen, and the prompt with its template
    assert charged < 400  # not the reservation: what was delivered
