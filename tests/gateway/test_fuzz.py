"""Fuzzing a live gateway (in front of the stand-in, keys on): schemathesis from the gateway's
own /openapi.json with a fixed seed, and a field-by-field wrong-type sweep. After every request a
probe with the same key (one concurrency slot) must be admitted: a leaked slot would refuse it.
Zero 5xx, every error in the OpenAI shape, an audit record for every generation request."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvloop
from hypothesis import HealthCheck, settings

from llmhost.gateway.keys import create_key
from llmhost.gateway.openapi import openapi_document
from llmhost.gateway.requests import SCHEMAS
from llmhost.gateway.store import open_store
from tests.support.harness import gateway, model, standin

ADMIN_KEY = "fuzz-admin-key"
GENERATION = set(SCHEMAS)
HOSTILE: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    1.5,
    "",
    "x",
    "\x00",
    [],
    [1],
    [[]],
    {},
    {"a": 1},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]


@dataclass
class Live:
    """A gateway running on its own loop in a thread, with a one-slot key."""

    url: str
    key: str
    store_url: str
    sent: list[str] = field(default_factory=list)  # generation paths requested


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    store_url = f"sqlite:///{folder / 'llmhost.db'}"
    store = open_store(store_url)
    key, _ = create_key(store, "fuzz", max_concurrent=1, tpm=10**9, monthly_tokens=10**12)
    store.close()
    previous = os.environ.get("LLMHOST_ADMIN_KEY")
    os.environ["LLMHOST_ADMIN_KEY"] = ADMIN_KEY
    started, url = threading.Event(), []
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        loop_box.append(asyncio.get_running_loop())
        async with (
            standin() as (_, burl),
            gateway(
                [model("m", burl, routing="prefix", context=4096)],
                auth="keys",
                store_url=store_url,
            ) as gurl,
        ):
            url.append(gurl)
            started.set()
            await stop[0].wait()

    thread = threading.Thread(target=lambda: uvloop.run(main()), daemon=True)
    thread.start()
    assert started.wait(30), "the gateway did not start"
    try:
        yield Live(url[0], key, store_url)
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(30)
        if previous is None:
            os.environ.pop("LLMHOST_ADMIN_KEY", None)
        else:
            os.environ["LLMHOST_ADMIN_KEY"] = previous


def check_answer(response: requests.Response) -> None:
    """No 5xx; an error is JSON in the OpenAI shape."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        error = body["error"]
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
        assert "code" in error


def probe(live: Live) -> None:
    """The key's only slot is free: a valid request is admitted (a leak is for ever, so a
    short grace for the background settlement cannot hide one)."""
    body = {"model": "m", "messages": [{"role": "user", "content": "probe"}], "max_tokens": 4}
    headers = {"Authorization": f"Bearer {live.key}"}
    deadline = time.monotonic() + 2.0
    while True:
        response = requests.post(
            live.url + "/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        live.sent.append("/v1/chat/completions")
        if response.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == 200, response.text


CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {"seed": 20261201, "generation": {"mode": "all", "max-examples": 30, "deterministic": True}}
)
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_schemathesis_finds_no_5xx_and_no_leak(case: Any, live: Live) -> None:
    token = ADMIN_KEY if case.path.startswith("/admin") else live.key
    generation = case.path in GENERATION and case.method.upper() == "POST"
    if generation and isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        case.body["model"] = "m"  # past model resolution, into validation, admission, relay
    response = case.call(base_url=live.url, headers={"Authorization": f"Bearer {token}"})
    if generation:
        live.sent.append(case.path)
    check_answer(response)
    if generation:
        probe(live)


CHAT_FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "seed",
    "user",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "response_format",
]
MESSAGE_FIELDS = ["role", "content", "name", "tool_call_id", "tool_calls"]
PART_FIELDS = ["type", "text"]


def bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    """A valid chat body with one field (top level, in a message, in a content part) replaced
    by each hostile value."""

    def base() -> dict[str, Any]:
        part = {"type": "text", "text": "hello"}
        return {"model": "m", "messages": [{"role": "user", "content": [part]}], "max_tokens": 4}

    for name, value in itertools.product(CHAT_FIELDS, HOSTILE):
        body = base()
        body[name] = value
        yield f"{name}={value!r}"[:60], body
    for name, value in itertools.product(MESSAGE_FIELDS, HOSTILE):
        body = base()
        body["messages"][0][name] = value
        yield f"messages[0].{name}={value!r}"[:60], body
    for name, value in itertools.product(PART_FIELDS, HOSTILE):
        body = base()
        body["messages"][0]["content"][0][name] = value
        yield f"content[0].{name}={value!r}"[:60], body


def test_every_field_with_every_wrong_type_is_a_4xx_or_served(live: Live) -> None:
    headers = {"Authorization": f"Bearer {live.key}"}
    failures = []
    for label, body in bodies():
        response = requests.post(
            live.url + "/v1/chat/completions", json=body, headers=headers, timeout=10
        )
        live.sent.append("/v1/chat/completions")
        try:
            check_answer(response)
            probe(live)
        except AssertionError as exc:
            failures.append(f"{label}: {exc}")
    assert not failures, failures[:10]


def test_every_generation_request_has_its_audit_record(live: Live) -> None:
    """Runs after the fuzzing above (same module): one record per request sent."""
    assert live.sent
    deadline = time.monotonic() + 5
    while True:
        store = open_store(live.store_url)
        try:
            rows = store.audit()
        finally:
            store.close()
        if len(rows) >= len(live.sent) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(rows) == len(live.sent)
