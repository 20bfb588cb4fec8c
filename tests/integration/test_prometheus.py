"""A real Prometheus (Debian's package) scraping a live gateway and its real llama-server: every
metric the gateway registers arrives with its type and labels, the alert rules `render` writes
evaluate (one fires on a synthetic failure), and the rendered dashboard's queries return data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from llmhost.deploy.objects import monitoring
from llmhost.engines.supervisor import free_port
from llmhost.gateway.metrics import GatewayMetrics
from tests.integration.conftest import GEMMA, Served, start_gateway, stop_gateway
from tests.support.harness import served_in_thread
from tests.support.processes import engine_pids, port_of
from tests.support.standin import StandIn

pytestmark = pytest.mark.integration
NAMESPACE = "llmhost"
PROMETHEUS = shutil.which("prometheus")


def prometheus_missing() -> None:
    message = "Prometheus (Debian package prometheus) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; under CI it must run (make test installs it)")
    pytest.skip(f"SKIPPED LOUDLY: {message}")


def api(base: str, path: str, **query: str) -> Any:
    url = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        answer = json.loads(resp.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    if PROMETHEUS is None:
        prometheus_missing()
    workdir = tmp_path_factory.mktemp("prometheus")
    with served_in_thread(StandIn(fail_status=500).app()) as flaky:
        config = {
            "server": {"health_interval_s": 0.5},
            "models": [
                {**GEMMA, "replicas": 1, "parallel": 2, "threads": 2},
                {"name": "flaky", "engine": "openai", "urls": [flaky]},
            ],
        }
        served = start_gateway(config, workdir)
        engine_port = port_of(engine_pids(served.proc.pid)[0])
        rules = monitoring.rules(NAMESPACE, gpu=False)["spec"]
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = "0s"  # evaluate now: the test cannot wait the production delays
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
        port = free_port()
        labels = {"namespace": NAMESPACE}
        (workdir / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(workdir / "rules.yml")],
                    "scrape_configs": [
                        {
                            "job_name": "gateway",
                            "static_configs": [
                                {
                                    "targets": [served.url.split("//")[1]],
                                    "labels": {**labels, "pod": "gateway-0"},
                                }
                            ],
                        },
                        {
                            "job_name": "engine",
                            "static_configs": [
                                {
                                    "targets": [f"127.0.0.1:{engine_port}"],
                                    "labels": {**labels, "pod": "engine-0"},
                                }
                            ],
                        },
                    ],
                }
            )
        )
        log = (workdir / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    targets = api(base, "targets")["activeTargets"]
                    if len(targets) == 2 and all(t["health"] == "up" for t in targets):
                        break
                except OSError:
                    pass
                time.sleep(0.5)
            else:
                pytest.fail(
                    f"Prometheus targets not up:\n{(workdir / 'prometheus.log').read_text()}"
                )
            chat = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
            for _ in range(3):
                assert (
                    post(
                        served.url + "/v1/chat/completions",
                        {"model": "gemma-3-270m", "stream": True, **chat},
                    )
                    == 200
                )
                assert post(served.url + "/v1/chat/completions", {"model": "flaky", **chat}) == 500
            time.sleep(3)  # a few scrapes and rule evaluations
            yield served, base
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            stop_gateway(served)


def test_every_gateway_metric_arrives_with_its_type_and_labels(stack: tuple[Served, str]) -> None:
    _, base = stack
    metadata = api(base, "metadata")
    registry = GatewayMetrics().registry
    families = list(registry.collect())
    assert families
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        if family.name in ("llmhost_tenant_tokens_month", "llmhost_tenant_budget_used_ratio"):
            continue  # opt-in (server.metrics_tenant_labels), off here
        if family.name in ("llmhost_scale_events", "llmhost_audit_dropped"):
            continue  # counters that only appear once something scaled or was dropped
        assert name in metadata, f"{name} not scraped; have {sorted(metadata)[:20]}..."
        assert metadata[name][0]["type"] == family.type, name
    series = api(base, "series", **{"match[]": "llmhost_requests_total"})
    assert {"model", "status", "namespace", "pod"} <= set(series[0])
    statuses = {(s["model"], s["status"]) for s in series}
    assert {("gemma-3-270m", "200"), ("flaky", "500")} <= statuses
    # The engine's own load metrics, which the router reads, from the real llama-server.
    assert "llamacpp:requests_processing" in metadata
    assert "llamacpp:requests_deferred" in metadata


def test_the_rendered_alerts_evaluate_and_one_fires_on_a_failure(stack: tuple[Served, str]) -> None:
    served, base = stack
    groups = api(base, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules and all(rule["health"] == "ok" for rule in rules), [
        (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
    ]
    deadline = time.monotonic() + 90  # evaluated every second; slow only on a loaded machine
    chat = {"model": "flaky", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    while time.monotonic() < deadline:
        # Failures keep coming, so the 5xx counter rises between scrapes (a rate needs that).
        assert post(served.url + "/v1/chat/completions", chat) == 500
        firing = {
            a["labels"]["alertname"]: a
            for a in api(base, "alerts")["alerts"]
            if a["state"] == "firing"
        }
        if "LlmhostHighErrorRate" in firing:
            break
        time.sleep(1)
    assert firing["LlmhostHighErrorRate"]["labels"]["model"] == "flaky"
    assert "LlmhostQueueDeep" not in firing  # a quiet rule stays quiet


def test_the_rendered_dashboard_queries_return_data(stack: tuple[Served, str]) -> None:
    _, base = stack
    board = monitoring.dashboard([], NAMESPACE, gpu=False)
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert exprs
    with_data = []
    for expr in exprs:
        result = api(base, "query", query=expr)["result"]
        if result:
            with_data.append(expr)
    gateway_exprs = [e for e in exprs if "llmhost_requests_total" in e or "time_to_first" in e]
    assert gateway_exprs and set(gateway_exprs) <= set(with_data), (gateway_exprs, with_data)
