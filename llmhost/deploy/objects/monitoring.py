"""Observability: what Prometheus scrapes (ServiceMonitor, PodMonitor; the GPU Operator's DCGM
exporter too), the alerts operators expect (PrometheusRule), and a Grafana dashboard (a
ConfigMap Grafana's sidecar picks up).

GPU series are the DCGM exporter's (NVIDIA/dcgm-exporter `etc/default-counters.csv`, which the
GPU Operator ships): DCGM_FI_DEV_GPU_UTIL (%), DCGM_FI_DEV_FB_USED/_FREE (MiB),
DCGM_FI_DEV_GPU_TEMP (C), DCGM_FI_DEV_POWER_USAGE (W), DCGM_FI_DEV_XID_ERRORS (last XID),
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS and DCGM_FI_DEV_ROW_REMAP_FAILURE (memory errors);
DCGM_FI_DEV_ECC_DBE_VOL_TOTAL and DCGM_FI_DEV_THERMAL_VIOLATION are in that file but commented
out: enable them in the exporter's counters for the ECC and thermal alerts to see them.
"""

from __future__ import annotations

import json
from typing import Any

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.meta import GATEWAY, obj, selector
from llmhost.deploy.options import RenderOptions
from llmhost.engines import adapter

MONITORING = "monitoring.coreos.com/v1"
KV_NEAR_FULL = 0.95
GPU_MEMORY_NEAR_FULL = 0.95
GPU_BUSY_PCT = 90
CERT_WARN_DAYS = 7
DCGM_APP = "nvidia-dcgm-exporter"  # the GPU Operator's label on the exporter and its Service
DCGM_JOB = ".*dcgm-exporter.*"


def objects(engines: list[EngineDeployment], options: RenderOptions) -> list[dict[str, Any]]:
    """Every monitoring object the options ask for."""
    ns = options.namespace
    found = [service_monitor(ns)]
    engine_monitor = pod_monitor(engines, ns)
    if engine_monitor is not None:
        found.append(engine_monitor)
    gpu = options.gpu_monitoring and any(e.gpus for e in engines)
    if gpu:
        found.append(dcgm_monitor(options))
    tls = bool(options.ingress_host and options.tls)
    found += [rules(ns, gpu=gpu, tls=tls), dashboard_config_map(engines, ns, gpu=gpu)]
    return found


def dcgm_monitor(options: RenderOptions) -> dict[str, Any]:
    """Scrape the GPU Operator's DCGM exporter (its Service, or its pods with
    `--dcgm-monitor pod`) in the operator's namespace."""
    where = {"matchNames": [options.dcgm_namespace]}
    match = {"matchLabels": {"app": DCGM_APP}}
    if options.dcgm_monitor == "pod":
        pm = obj(
            MONITORING,
            "PodMonitor",
            "llmhost-dcgm",
            options.namespace,
            "gpu-metrics",
            "llmhost-dcgm",
        )
        pm["spec"] = {
            "namespaceSelector": where,
            "selector": match,
            "podMetricsEndpoints": [{"port": "metrics", "interval": "15s", "honorLabels": True}],
        }
        return pm
    sm = obj(
        MONITORING,
        "ServiceMonitor",
        "llmhost-dcgm",
        options.namespace,
        "gpu-metrics",
        "llmhost-dcgm",
    )
    sm["spec"] = {
        "namespaceSelector": where,
        "selector": match,
        "endpoints": [{"port": "gpu-metrics", "interval": "15s", "honorLabels": True}],
    }
    return sm


def service_monitor(namespace: str) -> dict[str, Any]:
    """Scrape every gateway pod's /metrics through the gateway Service."""
    sm = obj(MONITORING, "ServiceMonitor", GATEWAY, namespace, "gateway", GATEWAY)
    sm["spec"] = {
        "selector": {"matchLabels": selector("gateway", GATEWAY)},
        "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    }
    return sm


def pod_monitor(engines: list[EngineDeployment], namespace: str) -> dict[str, Any] | None:
    """Scrape the engines that export metrics (vLLM, llama.cpp): load, KV cache, latencies."""
    names = sorted(e.name for e in engines if adapter(e.engine).metrics_path)
    if not names:
        return None
    pm = obj(MONITORING, "PodMonitor", "llmhost-engines", namespace, "engine", "llmhost-engines")
    pm["spec"] = {
        "selector": {
            "matchLabels": {"app.kubernetes.io/name": "engine"},
            "matchExpressions": [
                {"key": "app.kubernetes.io/instance", "operator": "In", "values": names}
            ],
        },
        "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    }
    return pm


def _alert(name: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": {"summary": summary},
    }


def gpu_alerts() -> list[dict[str, Any]]:
    """GPU health from the DCGM exporter and the device plugin."""
    gpu = "Hostname, gpu"
    return [
        _alert(
            "LlmhostGpuUnavailable",
            '(max by (node) (kube_node_status_capacity{resource="nvidia_com_gpu"}) - '
            'max by (node) (kube_node_status_allocatable{resource="nvidia_com_gpu"})) > 0 '
            f'or max by (instance) (up{{job=~"{DCGM_JOB}"}}) == 0',
            "5m",
            "critical",
            "A GPU of {{ $labels.node }}{{ $labels.instance }} is not "
            "available (device plugin marked it unhealthy, or its DCGM exporter is down)",
        ),
        _alert(
            "LlmhostGpuXidError",
            f"max by ({gpu}) (DCGM_FI_DEV_XID_ERRORS) > 0",
            "1m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID {{ $value }}",
        ),
        _alert(
            "LlmhostGpuEccErrors",
            f"sum by ({gpu}) (increase(DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS[10m])) > 0 "
            f"or max by ({gpu}) (DCGM_FI_DEV_ROW_REMAP_FAILURE) > 0 "
            f"or sum by ({gpu}) (increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[10m])) > 0",
            "0m",
            "critical",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has uncorrectable memory errors",
        ),
        _alert(
            "LlmhostGpuThermalThrottling",
            f"sum by ({gpu}) (rate(DCGM_FI_DEV_THERMAL_VIOLATION[5m])) > 0",
            "5m",
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is throttled by temperature",
        ),
        _alert(
            "LlmhostGpuMemoryNearlyFull",
            f"max by ({gpu}) (DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + "
            f"DCGM_FI_DEV_FB_FREE)) > {GPU_MEMORY_NEAR_FULL}",
            "10m",
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has over 95% of its memory in use",
        ),
        _alert(
            "LlmhostGpuSaturated",
            f"avg by ({gpu}) (DCGM_FI_DEV_GPU_UTIL) > {GPU_BUSY_PCT}",
            "10m",
            "warning",
            "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} has been over 90% busy for 10 "
            "minutes: add replicas",
        ),
    ]


def certificate_alert(namespace: str) -> dict[str, Any]:
    """cert-manager's view of the gateway's certificate (its controller's metrics)."""
    return _alert(
        "LlmhostCertificateExpiring",
        f'min by (name) (certmanager_certificate_expiration_timestamp_seconds{{name="{GATEWAY}'
        f'-tls", exported_namespace="{namespace}"}}) - time() < {CERT_WARN_DAYS} * 86400',
        "1h",
        "warning",
        "The gateway's TLS certificate expires in under 7 days",
    )


def rules(namespace: str, gpu: bool = True, tls: bool = False) -> dict[str, Any]:
    """The alerts: errors, slow first tokens (the latency that does not grow with the answer),
    deep queues, crash loops, KV cache, budgets; GPUs, and the certificate when TLS is on."""
    ns = f'namespace="{namespace}"'
    rule = obj(MONITORING, "PrometheusRule", "llmhost", namespace, "alerts", "llmhost")
    alerts = [
        _alert(
            "LlmhostHighErrorRate",
            f'sum by (model) (rate(llmhost_requests_total{{{ns}, status=~"5.."}}[5m])) / '
            f"sum by (model) (rate(llmhost_requests_total{{{ns}}}[5m])) > 0.05",
            "5m",
            "critical",
            "More than 5% of {{ $labels.model }} requests fail with 5xx",
        ),
        _alert(
            "LlmhostSlowFirstToken",
            "histogram_quantile(0.99, sum by (model, le) (rate("
            f"llmhost_time_to_first_token_seconds_bucket{{{ns}}}[5m]))) > 2",
            "10m",
            "warning",
            "p99 time to first token of {{ $labels.model }} is over 2 s",
        ),
        _alert(
            "LlmhostQueueDeep",
            f"sum by (model) (llmhost_queued_requests{{{ns}}}) > 100",
            "5m",
            "warning",
            "Over 100 requests for {{ $labels.model }} wait for a replica",
        ),
        _alert(
            "LlmhostEngineQueueDeep",
            f"sum by (pod) (vllm:num_requests_waiting{{{ns}}}) > 100",
            "5m",
            "warning",
            "Engine {{ $labels.pod }} has over 100 requests waiting",
        ),
        _alert(
            "LlmhostCrashLooping",
            "max by (pod, container) (kube_pod_container_status_waiting_reason{"
            f'{ns}, reason="CrashLoopBackOff"}}) == 1',
            "5m",
            "critical",
            "{{ $labels.pod }} ({{ $labels.container }}) is crash-looping",
        ),
        _alert(
            "LlmhostKvCacheNearlyFull",
            f"max by (pod) (vllm:kv_cache_usage_perc{{{ns}}}) > {KV_NEAR_FULL} or "
            f"max by (pod) (llamacpp:kv_cache_usage_ratio{{{ns}}}) > {KV_NEAR_FULL}",
            "10m",
            "warning",
            "KV cache of {{ $labels.pod }} is over 95% full: requests queue or are preempted",
        ),
        _alert(
            "LlmhostTenantBudgetNearlyExhausted",
            f"max by (tenant) (llmhost_tenant_budget_used_ratio{{{ns}}}) > 0.9",
            "15m",
            "warning",
            "Tenant {{ $labels.tenant }} used over 90% of its monthly budget",
        ),
    ]
    if tls:
        alerts.append(certificate_alert(namespace))
    groups = [{"name": "llmhost", "rules": alerts}]
    if gpu:
        groups.append({"name": "llmhost-gpu", "rules": gpu_alerts()})
    rule["spec"] = {"groups": groups}
    return rule


def dashboard_config_map(
    engines: list[EngineDeployment], namespace: str, gpu: bool = True
) -> dict[str, Any]:
    """The Grafana dashboard, labelled for Grafana's dashboard sidecar."""
    cm = obj("v1", "ConfigMap", "llmhost-dashboard", namespace, "dashboard", "llmhost")
    cm["metadata"]["labels"]["grafana_dashboard"] = "1"
    cm["data"] = {"llmhost.json": json.dumps(dashboard(engines, namespace, gpu), indent=1)}
    return cm


def _panel(title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": {"uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


GPU_PANELS = [
    (
        "GPU utilisation",
        [("avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}} GPU {{gpu}}")],
        "percent",
    ),
    (
        "GPU memory in use",
        [
            (
                "max by (Hostname, gpu) (DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED"
                " + DCGM_FI_DEV_FB_FREE))",
                "{{Hostname}} GPU {{gpu}}",
            )
        ],
        "percentunit",
    ),
    (
        "GPU temperature",
        [("max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP)", "{{Hostname}} GPU {{gpu}}")],
        "celsius",
    ),
    (
        "GPU power",
        [("sum by (Hostname, gpu) (DCGM_FI_DEV_POWER_USAGE)", "{{Hostname}} GPU {{gpu}}")],
        "watt",
    ),
    (
        "GPU XID errors (last)",
        [("max by (Hostname, gpu) (DCGM_FI_DEV_XID_ERRORS)", "{{Hostname}} GPU {{gpu}}")],
        "short",
    ),
    (
        "GPU memory errors (ECC, remapped rows)",
        [
            (
                "sum by (Hostname, gpu) (increase(DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS[1h]))",
                "{{Hostname}} GPU {{gpu}} uncorrectable rows",
            ),
            (
                "sum by (Hostname, gpu) (increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[1h]))",
                "{{Hostname}} GPU {{gpu}} double-bit ECC",
            ),
        ],
        "short",
    ),
]


def dashboard(engines: list[EngineDeployment], namespace: str, gpu: bool = True) -> dict[str, Any]:
    """Requests, TTFT, ITL, tokens/s, queue, KV use, replicas, cost per hour, tenant usage, and
    the GPUs (utilisation, memory, temperature, power, XID, ECC)."""
    ns = f'namespace="{namespace}"'
    cost = (
        " + ".join(
            f'sum(llmhost_replicas{{{ns}, model="{e.model}"}}) / count(llmhost_replicas{{{ns}, '
            f'model="{e.model}"}}) * {e.hourly_cost_usd:g}'
            for e in engines
            if e.hourly_cost_usd is not None
        )
        or "vector(0)"
    )
    quantile = "histogram_quantile({q}, sum by (model, le) (rate({m}_bucket{{{ns}}}[5m])))"
    panels = [
        (
            "Requests per second",
            [
                (
                    f"sum by (model, status) (rate(llmhost_requests_total{{{ns}}}[5m]))",
                    "{{model}} {{status}}",
                )
            ],
            "reqps",
        ),
        (
            "Time to first token",
            [
                (
                    quantile.format(q=q, m="llmhost_time_to_first_token_seconds", ns=ns),
                    f"{{{{model}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            "s",
        ),
        (
            "Inter-token latency (engine)",
            [
                (
                    f"histogram_quantile({q}, sum by (model_name, le) (rate("
                    f"vllm:inter_token_latency_seconds_bucket{{{ns}}}[5m])))",
                    f"{{{{model_name}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            "s",
        ),
        (
            "Tokens per second",
            [
                (
                    f"sum by (model, kind) (rate(llmhost_tokens_total{{{ns}}}[5m]))",
                    "{{model}} {{kind}}",
                )
            ],
            "short",
        ),
        (
            "Queue",
            [
                (f"sum by (model) (llmhost_queued_requests{{{ns}}})", "{{model}} gateway"),
                (f"sum by (pod) (vllm:num_requests_waiting{{{ns}}})", "{{pod}} engine"),
            ],
            "short",
        ),
        (
            "KV cache in use",
            [
                (f"max by (pod) (vllm:kv_cache_usage_perc{{{ns}}})", "{{pod}}"),
                (f"max by (pod) (llamacpp:kv_cache_usage_ratio{{{ns}}})", "{{pod}}"),
            ],
            "percentunit",
        ),
        (
            "Replicas",
            [
                (f"max by (model) (llmhost_replicas{{{ns}}})", "{{model}} running"),
                (f"max by (model) (llmhost_desired_replicas{{{ns}}})", "{{model}} desired"),
            ],
            "short",
        ),
        ("Cost per hour (plan prices)", [(cost, "USD/h")], "currencyUSD"),
        (
            "Tenant tokens this month",
            [(f"max by (tenant) (llmhost_tenant_tokens_month{{{ns}}})", "{{tenant}}")],
            "short",
        ),
        (
            "Tenant budget used",
            [(f"max by (tenant) (llmhost_tenant_budget_used_ratio{{{ns}}})", "{{tenant}}")],
            "percentunit",
        ),
    ]
    if gpu:
        panels += GPU_PANELS
    return {
        "title": f"llmhost ({namespace})",
        "uid": f"llmhost-{namespace}"[:40],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": [
            _panel(title, targets, unit, 12 * (i % 2), 8 * (i // 2))
            for i, (title, targets, unit) in enumerate(panels)
        ],
    }
