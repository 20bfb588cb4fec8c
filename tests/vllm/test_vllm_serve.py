"""The real vLLM behind the real gateway, driven with the official `openai` client.

Every test here reads from the one session-wide pair of vLLM replicas (see conftest.py); the
crash test runs last because it kills one of them. Each test checks an assumption of the adapter
or the gateway against the real server.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml

from llmhost.engines.vllm import VllmAdapter
from tests.support.processes import wait_gone
from tests.vllm.conftest import (
    CHAT,
    VllmServed,
    engine_value,
    group_pids,
    metrics,
    wait_all_up,
)

# 15 minutes: the first test also waits for both replicas to start, the last for one to restart
# (minutes each on 2 busy cores).
pytestmark = [pytest.mark.vllm, pytest.mark.integration, pytest.mark.timeout(900)]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SYSTEM = "You are the support agent of a bicycle shop in a small town by the sea. " * 24
DATA = Path(__file__).parents[1] / "data" / "vllm"


def client(served: VllmServed) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.gateway.url + "/v1", api_key="unused", max_retries=0)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def engine_urls(served: VllmServed) -> list[str]:
    return [f"http://127.0.0.1:{port}" for port in served.ports().values()]


def running(served: VllmServed) -> float:
    return sum(engine_value(u, "vllm:num_requests_running") for u in engine_urls(served))


def gateway_tokens(served: VllmServed, kind: str) -> float:
    key = ("llmhost_tokens_total", frozenset({("model", CHAT), ("kind", kind)}))
    return metrics(served.gateway.url).get(key, 0.0)


def test_chat_counts_prompt_tokens_as_llama_server_does(vllm_served: VllmServed) -> None:
    reply = client(vllm_served).chat.completions.create(
        model=CHAT, messages=QUESTION, max_tokens=12, temperature=0
    )
    assert (reply.choices[0].message.content or "").strip()
    assert reply.usage is not None
    # llama-server counts 16 for this chat (BOS + Gemma's turn markers) and 6 for the plain
    # prompt below: the converted tokenizer must add BOS and carry Gemma's template to match.
    assert reply.usage.prompt_tokens == 16
    assert reply.usage.completion_tokens == 12 or reply.choices[0].finish_reason == "stop"


def test_text_completion_adds_bos_like_llama_server(vllm_served: VllmServed) -> None:
    done = client(vllm_served).completions.create(
        model=CHAT, prompt="The capital of France is", max_tokens=6, temperature=0
    )
    assert done.choices[0].text.strip()
    assert done.usage is not None and done.usage.prompt_tokens == 6


def test_stream_usage_is_counted_and_only_shown_when_asked(vllm_served: VllmServed) -> None:
    c = client(vllm_served)
    before = gateway_tokens(vllm_served, "completion")
    chunks = list(
        c.chat.completions.create(
            model="default", messages=QUESTION, max_tokens=8, temperature=0, stream=True
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices).strip()
    assert all(ch.usage is None for ch in chunks)  # the gateway asked vLLM, then stripped it
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1]
    counted = gateway_tokens(vllm_served, "completion") - before
    assert counted == 8 or (finish == "stop" and 0 < counted <= 8)
    asked = list(
        c.chat.completions.create(
            model=CHAT,
            messages=QUESTION,
            max_tokens=4,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = asked[-1].usage
    assert usage is not None and usage.prompt_tokens == 16 and not asked[-1].choices


def test_a_prompt_over_the_context_is_refused_with_an_integer_code(
    vllm_served: VllmServed,
) -> None:
    c = client(vllm_served)
    with pytest.raises(openai.BadRequestError) as caught:
        c.completions.create(model=CHAT, prompt="hello " * 2100, max_tokens=4)
    assert caught.value.status_code == 400
    body = caught.value.body  # the `error` object as vLLM wrote it (the client makes code a str)
    assert isinstance(body, dict) and isinstance(body["code"], int) and body["code"] == 400
    assert body["type"] == "BadRequestError" and body["param"] == "input_tokens"
    assert "maximum context length is 2048" in caught.value.message
    # A prompt that fits, with max_tokens past the context, is trimmed, not refused.
    trimmed = c.completions.create(
        model=CHAT, prompt="hello " * 2030, max_tokens=100, temperature=0
    )
    assert trimmed.usage is not None
    assert trimmed.usage.prompt_tokens + trimmed.usage.completion_tokens <= 2048
    assert trimmed.usage.completion_tokens < 100


def test_metrics_the_autoscaler_and_router_read(vllm_served: VllmServed) -> None:
    adapter = VllmAdapter()
    for url in engine_urls(vllm_served):
        names = {name for name, _ in metrics(url)}
        assert "vllm:gpu_cache_usage_perc" not in names  # gone in current releases
        labelled = [labels for name, labels in metrics(url) if name == adapter.running_metric]
        assert labelled and all(dict(lb).get("engine") == "0" for lb in labelled)
        load = adapter.read_load(page(url + "/metrics"))
        assert load is not None and load.kv_usage is not None
        assert load.prefix_queries is not None and load.prefix_hits is not None


async def _stream_a_while(url: str, served: VllmServed, leave_after: int) -> list[bytes]:
    body = {
        "model": CHAT,
        "messages": QUESTION,
        "stream": True,
        "max_tokens": 1500,
        "ignore_eos": True,
    }
    events = []
    async with (
        aiohttp.ClientSession() as s,
        s.post(url + "/v1/chat/completions", json=body) as r,
    ):
        assert r.status == 200
        for _ in range(leave_after):
            events.append(await r.content.readuntil(b"\n\n"))
        assert running(served) == 1  # 1500 tokens keep a replica busy for a minute and more
        busy = [u for u in engine_urls(served) if engine_value(u, "vllm:num_requests_running")]
        kv = engine_value(busy[0], "vllm:kv_cache_usage_perc")
        assert kv > 0  # a running sequence holds KV blocks
    return events


def test_client_disconnect_mid_stream_frees_the_engine_slot(vllm_served: VllmServed) -> None:
    asyncio.run(_stream_a_while(vllm_served.gateway.url, vllm_served, leave_after=3))
    deadline = time.monotonic() + 10
    while running(vllm_served) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(vllm_served) == 0


def test_prefix_routing_keeps_a_prefix_on_one_replica_and_hits_its_cache(
    vllm_served: VllmServed,
) -> None:
    urls = engine_urls(vllm_served)
    before = {u: engine_value(u, "vllm:prefix_cache_hits_total") for u in urls}
    c = client(vllm_served)
    for i in range(4):
        reply = c.chat.completions.create(
            model=CHAT,
            max_tokens=2,
            temperature=0,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Question {i}: do you fix brakes?"},
            ],
        )
        assert reply.usage is not None and reply.usage.prompt_tokens > 3 * 128
    gained = {u: engine_value(u, "vllm:prefix_cache_hits_total") - before[u] for u in urls}
    hit = [u for u, g in gained.items() if g > 0]
    assert len(hit) == 1, gained  # one replica holds the prefix and served all four
    # Requests 2 to 4 find at least the system prompt's whole 128-token blocks cached.
    assert gained[hit[0]] >= 3 * 2 * 128, gained
    load = VllmAdapter().read_load(page(hit[0] + "/metrics"))
    assert load is not None and load.prefix_hit_rate is not None and load.prefix_hit_rate > 0


def test_the_start_up_kv_figure_is_the_recorded_one(vllm_served: VllmServed) -> None:
    recorded = yaml.safe_load((DATA / "cpu-kv-cache.yaml").read_text())
    logs = sorted(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").glob(
            f"llmhost/logs/{CHAT}-*.{vllm_served.gateway.proc.pid}.log"
        )
    )
    assert logs, "no replica log"
    found = re.search(r"CPU KV cache size: ([\d,]+) tokens", logs[0].read_text(errors="replace"))
    assert found, "vLLM logged no CPU KV cache size"
    assert int(found[1].replace(",", "")) == recorded["logged_kv_tokens"]


def test_kill_9_of_a_replica_mid_stream(vllm_served: VllmServed) -> None:
    """Last: a replica killed with SIGKILL mid-stream ends that stream with an error, takes all
    its vLLM processes with it, the other replica serves on, and the supervisor restarts it."""
    launchers = vllm_served.launchers()
    assert len(launchers) == 2

    async def stream_then_kill() -> bytes:
        body = {
            "model": CHAT,
            "messages": QUESTION,
            "stream": True,
            "max_tokens": 1500,
            "ignore_eos": True,
        }
        async with (
            aiohttp.ClientSession() as s,
            s.post(vllm_served.gateway.url + "/v1/chat/completions", json=body) as r,
        ):
            for _ in range(3):
                await r.content.readuntil(b"\n\n")
            ports = vllm_served.ports()
            busy = [
                pid
                for pid, port in ports.items()
                if engine_value(f"http://127.0.0.1:{port}", "vllm:num_requests_running")
            ]
            assert len(busy) == 1
            victim_group.extend(group_pids(busy[0]))
            assert len(victim_group) >= 3  # launcher, API server, engine core (and worker)
            os.kill(busy[0], signal.SIGKILL)
            return await asyncio.wait_for(r.content.read(), timeout=60)

    victim_group: list[int] = []
    rest = asyncio.run(stream_then_kill())
    assert b"[DONE]" not in rest and b"error" in rest  # the stream ends with an error event
    assert wait_gone(victim_group, timeout_s=20) == [], "vLLM processes outlived their replica"
    reply = client(vllm_served).chat.completions.create(
        model=CHAT, messages=QUESTION, max_tokens=4, temperature=0
    )
    assert reply.choices[0].message.content is not None
    wait_all_up(vllm_served.gateway, 2, timeout_s=420)  # restarted, loaded, ready again
    assert set(vllm_served.launchers()) & set(victim_group) == set()
