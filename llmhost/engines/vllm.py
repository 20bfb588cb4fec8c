"""vLLM's OpenAI-compatible server: the engine on GPU clusters.

Sources: vLLM docs, "Production Metrics" (docs.vllm.ai/en/stable/usage/metrics, read 2026-11-23)
for metric names (`vllm:kv_cache_usage_perc` in V1, `vllm:gpu_cache_usage_perc` before), and the
`vllm serve` engine arguments.
"""

from __future__ import annotations

import orjson

from llmhost.engines.base import AdapterBase, LaunchSpec


class VllmAdapter(AdapterBase):
    """vLLM: `/health` answers 200 once the model is loaded; load from `/metrics` (running and
    waiting requests, KV-cache usage already 0-1). HF_TOKEN comes from a secret, not from here."""

    kind = "vllm"
    health_path = "/health"
    ready_path = "/health"
    metrics_path: str | None = "/metrics"
    supports_embeddings = True  # for embedding models (--task embed)
    running_metric = "vllm:num_requests_running"
    waiting_metric = "vllm:num_requests_waiting"
    kv_metrics = (("vllm:kv_cache_usage_perc", 1.0), ("vllm:gpu_cache_usage_perc", 1.0))
    tokenize_path: str | None = "/tokenize"

    def tokenize_body(self, text: str, model: str) -> bytes:
        """vLLM's form: `{"model": ..., "prompt": ...}` (special tokens added by default)."""
        return orjson.dumps({"model": model, "prompt": text})

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """`vllm serve` arguments; prefix caching on, since the gateway routes by prefix."""
        args = [
            "serve", spec.weights, "--served-model-name", spec.served_name,
            "--host", spec.host, "--port", str(spec.port),
            "--max-model-len", str(spec.context), "--max-num-seqs", str(spec.parallel),
            "--tensor-parallel-size", str(spec.tensor_parallel), "--enable-prefix-caching",
        ]  # fmt: skip
        for flag, value in (
            ("--quantization", spec.quantization),
            ("--kv-cache-dtype", spec.kv_cache_dtype),
            ("--dtype", spec.dtype),
            ("--gpu-memory-utilization", spec.gpu_memory_utilization),
            ("--chat-template", spec.chat_template),
        ):
            if value is not None:
                args += [flag, str(value)]
        return [*args, *spec.extra_args]
