"""`llmhost apply --canary N`: the render's engines go in beside the running ones, the gateway
sends them N% of requests, and the old revision keeps serving; the gateway's weighted routing
tested with stand-in engines."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import uvloop
import yaml

from llmhost.config import Config
from llmhost.deploy.apply import apply_objects, load_directory
from llmhost.deploy.canary import TRACK, canary_documents
from llmhost.deploy.catalog import DeployError
from llmhost.deploy.kubernetes import render, write_kustomize
from llmhost.gateway.kube_api import api_client
from tests.deploy.cases import CASES
from tests.deploy.test_apply import ApiServer
from tests.deploy.test_render import validate
from tests.gateway.test_tenancy import call, keyed, new_key
from tests.support.harness import gateway, model, standin

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def documents() -> list[dict[str, Any]]:
    case = CASES[0]
    return render([case.plan], dataclasses.replace(case.options, weights=case.options.weights))


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_the_canary_render_leaves_the_running_engine_alone() -> None:
    before = documents()
    after = canary_documents(before, 10)
    engine = next(
        d
        for d in by_kind(before, "Deployment")
        if "llmhost.dev/model" in d["metadata"].get("annotations", {})
    )
    name = engine["metadata"]["name"]
    deployments = {d["metadata"]["name"]: d for d in by_kind(after, "Deployment")}
    assert name not in deployments  # the live Deployment is not touched: the old revision serves
    trial = deployments[f"{name}-canary"]
    assert trial["spec"]["replicas"] == 1
    assert trial["spec"]["selector"]["matchLabels"][TRACK] == "canary"
    live_selector = engine["spec"]["selector"]["matchLabels"]
    trial_labels = trial["spec"]["template"]["metadata"]["labels"]
    assert not all(trial_labels.get(k) == v for k, v in live_selector.items())  # no overlap
    services = {d["metadata"]["name"]: d for d in by_kind(after, "Service")}
    assert services[f"{name}-canary"]["spec"]["selector"][TRACK] == "canary"
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for d in after if "canary" in str(d))
    for doc in after:
        validate(doc)
    config_map = next(d for d in after if "llmhost.yaml" in d.get("data", {}))
    config = Config.model_validate(yaml.safe_load(config_map["data"]["llmhost.yaml"]))
    base = next(m for m in config.models if m.canary is not None)
    assert base.canary is not None and base.canary.percent == 10
    trial_model = next(m for m in config.models if m.name == base.canary.model)
    assert trial_model.kubernetes is not None
    assert trial_model.kubernetes.deployment == f"{name}-canary"
    assert trial_model.kubernetes.scale is False
    assert trial_model.upstream_model == base.name
    gateway_before = next(
        d for d in by_kind(before, "Deployment") if d["metadata"]["name"] == "llmhost-gateway"
    )
    gateway_after = deployments["llmhost-gateway"]
    digest = "llmhost.dev/config-sha256"
    assert (
        gateway_before["spec"]["template"]["metadata"]["annotations"][digest]
        != gateway_after["spec"]["template"]["metadata"]["annotations"][digest]
    )


@pytest.mark.parametrize("percent", [0, 100, -5, 250])
def test_a_share_outside_0_to_100_is_refused(percent: float) -> None:
    with pytest.raises(DeployError, match="between 0 and 100"):
        canary_documents(documents(), percent)


def test_apply_canary_sends_the_new_engine_beside_the_old(
    tmp_path: Path, api: tuple[ApiServer, str]
) -> None:
    server, url = api
    case = CASES[0]
    out = tmp_path / "k8s"
    write_kustomize(render([case.plan], case.options), out)

    async def run() -> None:
        client = api_client(None, url)
        try:
            objects = load_directory(out, lambda docs: canary_documents(docs, 10))
            await apply_objects(client, objects, False, lambda change: None)
        finally:
            await client.close()

    asyncio.run(run())
    names = [path.rsplit("/", 1)[-1] for path in server.objects if "/deployments/" in path]
    assert any(n.endswith("-canary") for n in names)
    assert [n for n in names if n.startswith("engine") and not n.endswith("-canary")] == []


def test_the_gateway_sends_the_canary_its_share_and_all_to_the_model_when_it_is_down(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        key = new_key(tmp_path, models=["m"])
        async with standin() as (old, old_url), standin() as (new, new_url):
            models = [
                model("m", old_url, canary={"model": "m-canary", "percent": 25}),
                model("m-canary", new_url, upstream_model="m"),
            ]
            async with gateway(models, **keyed(tmp_path)) as url:
                results = await asyncio.gather(*(call(url, key, CHAT) for _ in range(200)))
                assert {status for status, _, _ in results} == {200}  # the key's "m" covers it
            assert 25 <= len(new.requests) <= 75, len(new.requests)  # binomial(200, 0.25)
            assert len(old.requests) + len(new.requests) == 200
            assert {r["model"] for r in new.requests} == {"m"}  # the engine's own name
            down = [
                model("m", old_url, canary={"model": "m-canary", "percent": 50}),
                model("m-canary", "http://127.0.0.1:9", upstream_model="m"),
            ]
            async with gateway(down, wait_ready=False, **keyed(tmp_path)) as url:
                for _ in range(100):  # the model is ready; its canary never will be
                    _, _, ready = await call(url, None, method="GET", path="/ready")
                    if ready["models"]["m"]:
                        break
                    await asyncio.sleep(0.05)
                results = await asyncio.gather(*(call(url, key, CHAT) for _ in range(40)))
                assert {status for status, _, _ in results} == {200}
            assert len(old.requests) >= 40 + 125

    uvloop.run(scenario())
