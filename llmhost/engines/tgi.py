"""Hugging Face Text Generation Inference (TGI), through its OpenAI-compatible Messages API.

Source: TGI docs, "Metrics" (huggingface.co/docs/text-generation-inference/reference/metrics,
read 2026-11-23): `tgi_batch_current_size` (running) and `tgi_queue_size` (waiting); TGI does
not export KV-cache usage.
"""

from __future__ import annotations

from llmhost.engines.base import AdapterBase, LaunchSpec


class TgiAdapter(AdapterBase):
    """TGI's launcher: `/health` is 200 once the shards are up; batch size is the running load,
    queue size the waiting."""

    kind = "tgi"
    health_path = "/health"
    ready_path = "/health"
    metrics_path: str | None = "/metrics"
    supports_embeddings = False  # TGI serves generation; embeddings are TEI's job
    running_metric = "tgi_batch_current_size"
    waiting_metric = "tgi_queue_size"

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """`text-generation-launcher` arguments."""
        args = [
            "--model-id",
            spec.weights,
            "--hostname",
            spec.host,
            "--port",
            str(spec.port),
            "--max-total-tokens",
            str(spec.context),
            "--max-concurrent-requests",
            str(max(spec.parallel, 1) * 8),
            "--num-shard",
            str(spec.tensor_parallel),
        ]
        if spec.quantization:
            args += ["--quantize", spec.quantization]
        if spec.dtype:
            args += ["--dtype", spec.dtype]
        return [*args, *spec.extra_args]
