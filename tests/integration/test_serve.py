"""The real embedded model behind the real gateway, driven with the official `openai` client.

The gateway runs as `llmhost up` in its own process with two llama-server replicas of Gemma 3
270M and one embedding replica, as a user would run it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import GEMMA, Served, start_gateway, stop_gateway
from tests.support.processes import cmdline, engine_pids, port_of, wait_gone

pytestmark = pytest.mark.integration
CHAT = "gemma-3-270m"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


def metric_values(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def tokens(served: Served, kind: str) -> float:
    key = ("llmhost_tokens_total", frozenset({("model", CHAT), ("kind", kind)}))
    return metric_values(served.url + "/metrics").get(key, 0.0)


def test_chat_returns_text_through_gemmas_template(served: Served) -> None:
    reply = client(served).chat.completions.create(
        model=CHAT, messages=QUESTION, max_tokens=24, temperature=0
    )
    assert (reply.choices[0].message.content or "").strip()
    assert reply.usage is not None
    # The question alone is 9 tokens with BOS; Gemma's turn markers around it make 16. A missing
    # or wrong template (llama-server reads a bare name as Jinja text) gives far fewer.
    assert reply.usage.prompt_tokens >= 14
    assert reply.usage.completion_tokens == 24 or reply.choices[0].finish_reason == "stop"


def test_chat_stream_counts_usage_the_client_did_not_ask_for(served: Served) -> None:
    before = tokens(served, "completion")
    stream = client(served).chat.completions.create(
        model="default", messages=QUESTION, max_tokens=16, temperature=0, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert all(c.usage is None for c in chunks)
    assert tokens(served, "completion") - before == 16 or chunks[-1].choices[0].finish_reason


def test_text_completions_stream_and_not(served: Served) -> None:
    c = client(served)
    done = c.completions.create(model=CHAT, prompt="The capital of France is", max_tokens=8)
    assert done.choices[0].text.strip()
    assert done.usage is not None and done.usage.completion_tokens > 0
    streamed = c.completions.create(
        model=CHAT, prompt="Once upon a time", max_tokens=8, stream=True
    )
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices).strip()


def test_models_and_embeddings(served: Served) -> None:
    c = client(served)
    assert [m.id for m in c.models.list().data] == [CHAT, "gemma-embed"]
    emb = c.embeddings.create(model="gemma-embed", input=["hello", "world"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 640  # Gemma 3 270M width
    with pytest.raises(openai.APIStatusError) as caught:
        c.embeddings.create(model=CHAT, input="hello")  # started without --embeddings
    assert caught.value.status_code == 501
    assert "embeddings" in str(caught.value)


def test_eight_concurrent_requests_all_succeed(served: Served) -> None:
    async def scenario() -> list[str]:
        c = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
        replies = await asyncio.gather(
            *(
                c.chat.completions.create(
                    model=CHAT,
                    messages=[{"role": "user", "content": f"Count to {i}"}],
                    max_tokens=12,
                    temperature=0,  # sampled, a base model may emit only blanks
                )
                for i in range(8)
            )
        )
        return [r.choices[0].message.content or "" for r in replies]

    texts = asyncio.run(scenario())
    assert len(texts) == 8 and all(t.strip() for t in texts)


def _busy_slots(served: Served) -> float:
    total = 0.0
    for pid in engine_pids(served.proc.pid):
        url = f"http://127.0.0.1:{port_of(pid)}/metrics"
        total += metric_values(url).get(("llamacpp:requests_processing", frozenset()), 0.0)
    return total


def test_client_disconnect_mid_stream_frees_the_engine_slot(served: Served) -> None:
    async def read_a_little_then_leave() -> None:
        body = {
            "model": CHAT,
            "messages": QUESTION,
            "stream": True,
            "max_tokens": 2000,  # within the 2048-token context (more is refused with 400)
            "ignore_eos": True,
        }
        async with (
            aiohttp.ClientSession() as s,
            s.post(served.url + "/v1/chat/completions", json=body) as r,
        ):
            assert r.status == 200
            for _ in range(3):
                await r.content.readuntil(b"\n\n")
            assert _busy_slots(served) == 1  # 2000 tokens would keep it busy for ~30 s

    asyncio.run(read_a_little_then_leave())
    deadline = time.monotonic() + 5
    while _busy_slots(served) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _busy_slots(served) == 0


def test_errors_through_the_real_path(served: Served) -> None:
    c = client(served)
    with pytest.raises(openai.NotFoundError, match="served: default, gemma-3-270m, gemma-embed"):
        c.chat.completions.create(model="llama-9000", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        c.chat.completions.create(model=CHAT, messages=QUESTION, max_tokens=-5)


def test_metrics_show_every_replica_up(served: Served) -> None:
    values = metric_values(served.url + "/metrics")
    up = {
        dict(labels)["replica"]: v
        for (name, labels), v in values.items()
        if name == "llmhost_backend_up"
    }
    assert len(up) == 3 and all(v == 1 for v in up.values())


def test_a_crashed_replica_is_restarted_and_requests_keep_working(served: Served) -> None:
    chat_engines = [p for p in engine_pids(served.proc.pid) if "--embeddings" not in cmdline(p)]
    victim = chat_engines[0]
    os.kill(victim, signal.SIGKILL)
    c = client(served)
    for _ in range(4):  # the dead replica's share is retried on the live one
        reply = c.chat.completions.create(model=CHAT, messages=QUESTION, max_tokens=4)
        assert reply.choices[0].message.content is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = engine_pids(served.proc.pid)
        values = metric_values(served.url + "/metrics")
        up = [v for (name, _), v in values.items() if name == "llmhost_backend_up"]
        if victim not in now and len(now) == 3 and up.count(1.0) == 3:
            return
        time.sleep(0.5)
    pytest.fail(f"replica not restarted; engines now {engine_pids(served.proc.pid)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_stopping_the_gateway_leaves_no_engine_behind(
    sig: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = {"models": [{**GEMMA, "replicas": 1, "parallel": 1, "context": 512}]}
    served = start_gateway(config, tmp_path_factory.mktemp("stop"))
    engines = engine_pids(served.proc.pid)
    assert len(engines) == 1
    left = stop_gateway(served, sig)  # SIGKILL: the engines' parent-death signal stops them
    assert left == [] and wait_gone(engines) == []


def test_the_printed_examples_work(served: Served) -> None:
    banner = served.log_text().split("llmhost is serving", 1)[1]
    curl = banner[banner.index("  curl ") : banner.index("\n\n", banner.index("  curl "))]
    out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and '"content"' in out.stdout, out.stderr
    start = banner.index(f"  {sys.executable} -c ")  # the banner names this environment's Python
    python = banner[start : banner.index("\n\n", start)]
    out = subprocess.run(["bash", "-c", python], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
