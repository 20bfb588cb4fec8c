"""Every rendered alert checked by Prometheus' own `promtool`: `check rules` on the rule file the
PrometheusRule holds, and `test rules` against synthetic series, each alert once firing (with
its labels and summary) and once quiet on healthy series.

promtool comes from Debian's `prometheus` package (`make test` installs it when missing, as
root); without it this test is skipped with a loud reason, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmhost.deploy.kubernetes import render
from tests.deploy.cases import CASES

NS = 'namespace="llmhost"'
GPU = 'Hostname="gpu-node-1", gpu="0"'
# alert -> (series that make it fire, labels it fires with, minutes to evaluate at,
#           series of a healthy system)
FIRING: dict[str, tuple[list[tuple[str, str]], dict[str, str], int, list[tuple[str, str]]]] = {
    "LlmhostHighErrorRate": (
        [
            (f'llmhost_requests_total{{{NS}, model="m", status="200"}}', "0+60x40"),
            (f'llmhost_requests_total{{{NS}, model="m", status="500"}}', "0+10x40"),
        ],
        {"model": "m"},
        15,
        [
            (f'llmhost_requests_total{{{NS}, model="m", status="200"}}', "0+60x40"),
            (f'llmhost_requests_total{{{NS}, model="m", status="500"}}', "0+1x40"),
        ],
    ),
    "LlmhostSlowFirstToken": (
        [
            *(
                (
                    f'llmhost_time_to_first_token_seconds_bucket{{{NS}, model="m", le="{le}"}}',
                    "0x40",
                )
                for le in ("0.5", "1", "2")
            ),
            *(
                (
                    f'llmhost_time_to_first_token_seconds_bucket{{{NS}, model="m", le="{le}"}}',
                    "0+10x40",
                )
                for le in ("5", "+Inf")
            ),
        ],
        {"model": "m"},
        20,
        [
            (f'llmhost_time_to_first_token_seconds_bucket{{{NS}, model="m", le="{le}"}}', "0+10x40")
            for le in ("0.5", "1", "2", "5", "+Inf")
        ],
    ),
    "LlmhostQueueDeep": (
        [(f'llmhost_queued_requests{{{NS}, model="m"}}', "150x40")],
        {"model": "m"},
        10,
        [(f'llmhost_queued_requests{{{NS}, model="m"}}', "20x40")],
    ),
    "LlmhostEngineQueueDeep": (
        [(f'vllm:num_requests_waiting{{{NS}, pod="engine-0"}}', "120x40")],
        {"pod": "engine-0"},
        10,
        [(f'vllm:num_requests_waiting{{{NS}, pod="engine-0"}}', "3x40")],
    ),
    "LlmhostCrashLooping": (
        [
            (
                f'kube_pod_container_status_waiting_reason{{{NS}, pod="engine-0", '
                'container="vllm", reason="CrashLoopBackOff"}',
                "1x40",
            )
        ],
        {"pod": "engine-0", "container": "vllm"},
        10,
        [
            (
                f'kube_pod_container_status_waiting_reason{{{NS}, pod="engine-0", '
                'container="vllm", reason="CrashLoopBackOff"}',
                "0x40",
            )
        ],
    ),
    "LlmhostKvCacheNearlyFull": (
        [(f'vllm:kv_cache_usage_perc{{{NS}, pod="engine-0"}}', "0.97x40")],
        {"pod": "engine-0"},
        15,
        [(f'vllm:kv_cache_usage_perc{{{NS}, pod="engine-0"}}', "0.6x40")],
    ),
    "LlmhostTenantBudgetNearlyExhausted": (
        [(f'llmhost_tenant_budget_used_ratio{{{NS}, tenant="acme"}}', "0.95x40")],
        {"tenant": "acme"},
        20,
        [(f'llmhost_tenant_budget_used_ratio{{{NS}, tenant="acme"}}', "0.5x40")],
    ),
    "LlmhostCertificateExpiring": (
        # promtool's clock starts at 0: the certificate expires 3 days in.
        [
            (
                'certmanager_certificate_expiration_timestamp_seconds{name="llmhost-gateway-tls",'
                ' exported_namespace="llmhost"}',
                "259200x100",
            )
        ],
        {"name": "llmhost-gateway-tls"},
        70,
        [
            (
                'certmanager_certificate_expiration_timestamp_seconds{name="llmhost-gateway-tls",'
                ' exported_namespace="llmhost"}',
                "7776000x100",
            )
        ],
    ),
    "LlmhostGpuUnavailable": (
        [
            ('kube_node_status_capacity{node="gpu-node-1", resource="nvidia_com_gpu"}', "8x40"),
            ('kube_node_status_allocatable{node="gpu-node-1", resource="nvidia_com_gpu"}', "7x40"),
        ],
        {"node": "gpu-node-1"},
        10,
        [
            ('kube_node_status_capacity{node="gpu-node-1", resource="nvidia_com_gpu"}', "8x40"),
            ('kube_node_status_allocatable{node="gpu-node-1", resource="nvidia_com_gpu"}', "8x40"),
            ('up{job="nvidia-dcgm-exporter", instance="10.0.0.5:9400"}', "1x40"),
        ],
    ),
    "LlmhostGpuXidError": (
        [(f"DCGM_FI_DEV_XID_ERRORS{{{GPU}}}", "0 0 79x40")],
        {"Hostname": "gpu-node-1", "gpu": "0"},
        5,
        [(f"DCGM_FI_DEV_XID_ERRORS{{{GPU}}}", "0x40")],
    ),
    "LlmhostGpuEccErrors": (
        [(f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{GPU}}}", "0 0 0 1x40")],
        {"Hostname": "gpu-node-1", "gpu": "0"},
        6,
        [(f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{GPU}}}", "0x40")],
    ),
    "LlmhostGpuThermalThrottling": (
        [(f"DCGM_FI_DEV_THERMAL_VIOLATION{{{GPU}}}", "0+5000000x40")],
        {"Hostname": "gpu-node-1", "gpu": "0"},
        15,
        [(f"DCGM_FI_DEV_THERMAL_VIOLATION{{{GPU}}}", "0x40")],
    ),
    "LlmhostGpuMemoryNearlyFull": (
        [
            (f"DCGM_FI_DEV_FB_USED{{{GPU}}}", "79000x40"),
            (f"DCGM_FI_DEV_FB_FREE{{{GPU}}}", "1000x40"),
        ],
        {"Hostname": "gpu-node-1", "gpu": "0"},
        15,
        [
            (f"DCGM_FI_DEV_FB_USED{{{GPU}}}", "60000x40"),
            (f"DCGM_FI_DEV_FB_FREE{{{GPU}}}", "20000x40"),
        ],
    ),
    "LlmhostGpuSaturated": (
        [(f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}}", "95x40")],
        {"Hostname": "gpu-node-1", "gpu": "0"},
        15,
        [(f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}}", "60x40")],
    ),
}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is missing: install Debian's `prometheus` package (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(f"SKIPPED LOUDLY: {reason}")
    return found


def rendered_rules() -> list[dict[str, Any]]:
    """The alert rules of the case that renders all of them (GPUs and TLS)."""
    case = CASES[3]
    rule = next(o for o in render([case.plan], case.options) if o["kind"] == "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def summary(template: str, labels: dict[str, str], value: str) -> str:
    """The rule's summary as Prometheus expands it, for these labels and value."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.replace("{{ $value }}", value)


def test_every_alert_passes_promtool(tmp_path: Path) -> None:
    binary = promtool()
    groups = rendered_rules()
    rules_file = tmp_path / "llmhost.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    checked = subprocess.run(
        [binary, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(rules) == set(FIRING), "every rendered alert has a promtool test, and only those"
    tests = []
    for name, (series, labels, minutes, healthy) in FIRING.items():
        rule = rules[name]
        value = "79" if name == "LlmhostGpuXidError" else ""
        expected = {
            "exp_labels": {**labels, "severity": rule["labels"]["severity"]},
            "exp_annotations": {"summary": summary(rule["annotations"]["summary"], labels, value)},
        }
        tests.append(
            {
                "name": f"{name} fires",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {"eval_time": f"{minutes}m", "alertname": name, "exp_alerts": [expected]}
                ],
            }
        )
        tests.append(
            {
                "name": f"{name} stays quiet",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in healthy],
                "alert_rule_test": [
                    {"eval_time": f"{minutes}m", "alertname": n, "exp_alerts": []} for n in FIRING
                ],
            }
        )
    test_file = tmp_path / "llmhost.test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    done = subprocess.run(
        [binary, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The check above can fail: a queue of 50 does not fire the over-100 alert."""
    binary = promtool()
    rules_file = tmp_path / "llmhost.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rendered_rules()}, sort_keys=False))
    test = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'llmhost_queued_requests{{{NS}, model="m"}}', "values": "50x40"}
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "LlmhostQueueDeep",
                        "exp_alerts": [{"exp_labels": {"model": "m", "severity": "warning"}}],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "wrong.test.yaml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    done = subprocess.run(
        [binary, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode != 0
