"""Observability: what Prometheus scrapes (ServiceMonitor, PodMonitor), the alerts operators
expect (PrometheusRule), and a Grafana dashboard (a ConfigMap Grafana's sidecar picks up)."""

from __future__ import annotations

import json
from typing import Any

from llmhost.deploy.model import EngineDeployment
from llmhost.deploy.objects.meta import GATEWAY, obj, selector
from llmhost.engines import adapter

MONITORING = "monitoring.coreos.com/v1"
KV_NEAR_FULL = 0.95


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
        "selector": {"matchLabels": {"app.kubernetes.io/name": "engine"},
                     "matchExpressions": [{"key": "app.kubernetes.io/instance",
                                           "operator": "In", "values": names}]},
        "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    }  # fmt: skip
    return pm


def _alert(name: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
            "annotations": {"summary": summary}}  # fmt: skip


def rules(namespace: str) -> dict[str, Any]:
    """The alerts: errors, slow first tokens, deep queues, crash loops, KV cache, budgets."""
    ns = f'namespace="{namespace}"'
    rule = obj(MONITORING, "PrometheusRule", "llmhost", namespace, "alerts", "llmhost")
    alerts = [
        _alert("LlmhostHighErrorRate",
               f'sum by (model) (rate(llmhost_requests_total{{{ns}, status=~"5.."}}[5m])) / '
               f"sum by (model) (rate(llmhost_requests_total{{{ns}}}[5m])) > 0.05",
               "5m", "critical", "More than 5% of {{ $labels.model }} requests fail with 5xx"),
        _alert("LlmhostSlowFirstToken",
               "histogram_quantile(0.99, sum by (model, le) (rate("
               f"llmhost_time_to_first_token_seconds_bucket{{{ns}}}[5m]))) > 2",
               "10m", "warning", "p99 time to first token of {{ $labels.model }} is over 2 s"),
        _alert("LlmhostQueueDeep",
               f"sum by (model) (llmhost_queued_requests{{{ns}}}) > 100",
               "5m", "warning", "Over 100 requests for {{ $labels.model }} wait for a replica"),
        _alert("LlmhostEngineQueueDeep",
               f"sum by (pod) (vllm:num_requests_waiting{{{ns}}}) > 100",
               "5m", "warning", "Engine {{ $labels.pod }} has over 100 requests waiting"),
        _alert("LlmhostCrashLooping",
               "max by (pod, container) (kube_pod_container_status_waiting_reason{"
               f'{ns}, reason="CrashLoopBackOff"}}) == 1',
               "5m", "critical", "{{ $labels.pod }} ({{ $labels.container }}) is crash-looping"),
        _alert("LlmhostKvCacheNearlyFull",
               f"max by (pod) (vllm:kv_cache_usage_perc{{{ns}}}) > {KV_NEAR_FULL} or "
               f"max by (pod) (llamacpp:kv_cache_usage_ratio{{{ns}}}) > {KV_NEAR_FULL}",
               "10m", "warning",
               "KV cache of {{ $labels.pod }} is over 95% full: requests queue or are preempted"),
        _alert("LlmhostTenantBudgetNearlyExhausted",
               f"max by (tenant) (llmhost_tenant_budget_used_ratio{{{ns}}}) > 0.9",
               "15m", "warning", "Tenant {{ $labels.tenant }} used over 90% of its monthly budget"),
    ]  # fmt: skip
    rule["spec"] = {"groups": [{"name": "llmhost", "rules": alerts}]}
    return rule


def dashboard_config_map(engines: list[EngineDeployment], namespace: str) -> dict[str, Any]:
    """The Grafana dashboard, labelled for Grafana's dashboard sidecar."""
    cm = obj("v1", "ConfigMap", "llmhost-dashboard", namespace, "dashboard", "llmhost")
    cm["metadata"]["labels"]["grafana_dashboard"] = "1"
    cm["data"] = {"llmhost.json": json.dumps(dashboard(engines, namespace), indent=1)}
    return cm


def _panel(title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int
           ) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "timeseries", "title": title, "datasource": {"uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)],
    }  # fmt: skip


def dashboard(engines: list[EngineDeployment], namespace: str) -> dict[str, Any]:
    """Requests, TTFT, ITL, tokens/s, queue, KV use, replicas, cost per hour, tenant usage."""
    ns = f'namespace="{namespace}"'
    cost = " + ".join(
        f'sum(llmhost_replicas{{{ns}, model="{e.model}"}}) / count(llmhost_replicas{{{ns}, '
        f'model="{e.model}"}}) * {e.hourly_cost_usd:g}'
        for e in engines if e.hourly_cost_usd is not None
    ) or "vector(0)"  # fmt: skip
    quantile = "histogram_quantile({q}, sum by (model, le) (rate({m}_bucket{{{ns}}}[5m])))"
    panels = [
        ("Requests per second", [(f"sum by (model, status) (rate(llmhost_requests_total{{{ns}}}"
                                  "[5m]))", "{{model}} {{status}}")], "reqps"),
        ("Time to first token", [(quantile.format(q=q, m="llmhost_time_to_first_token_seconds",
                                                  ns=ns), f"{{{{model}}}} p{int(q * 100)}")
                                 for q in (0.5, 0.95, 0.99)], "s"),
        ("Inter-token latency (engine)", [(
            f"histogram_quantile({q}, sum by (model_name, le) (rate("
            f"vllm:inter_token_latency_seconds_bucket{{{ns}}}[5m])))",
            f"{{{{model_name}}}} p{int(q * 100)}") for q in (0.5, 0.95)], "s"),
        ("Tokens per second", [(f"sum by (model, kind) (rate(llmhost_tokens_total{{{ns}}}[5m]))",
                                "{{model}} {{kind}}")], "short"),
        ("Queue", [(f"sum by (model) (llmhost_queued_requests{{{ns}}})", "{{model}} gateway"),
                   (f"sum by (pod) (vllm:num_requests_waiting{{{ns}}})", "{{pod}} engine")],
         "short"),
        ("KV cache in use", [(f"max by (pod) (vllm:kv_cache_usage_perc{{{ns}}})", "{{pod}}"),
                             (f"max by (pod) (llamacpp:kv_cache_usage_ratio{{{ns}}})", "{{pod}}")],
         "percentunit"),
        ("Replicas", [(f"max by (model) (llmhost_replicas{{{ns}}})", "{{model}} running"),
                      (f"max by (model) (llmhost_desired_replicas{{{ns}}})", "{{model}} desired")],
         "short"),
        ("Cost per hour (plan prices)", [(cost, "USD/h")], "currencyUSD"),
        ("Tenant tokens this month", [(f"max by (tenant) (llmhost_tenant_tokens_month{{{ns}}})",
                                       "{{tenant}}")], "short"),
        ("Tenant budget used", [(f"max by (tenant) (llmhost_tenant_budget_used_ratio{{{ns}}})",
                                 "{{tenant}}")], "percentunit"),
    ]  # fmt: skip
    return {
        "title": f"llmhost ({namespace})",
        "uid": f"llmhost-{namespace}"[:40],
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": [_panel(title, targets, unit, 12 * (i % 2), 8 * (i // 2))
                   for i, (title, targets, unit) in enumerate(panels)],
    }  # fmt: skip
