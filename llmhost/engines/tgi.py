"""Hugging Face Text Generation Inference (TGI), through its OpenAI-compatible Messages API.

Source: TGI docs, "Metrics" (huggingface.co/docs/text-generation-inference/reference/metrics,
read 2026-11-23): `tgi_batch_current_size` (running) and `tgi_queue_size` (waiting); TGI does
not export KV-cache usage.
"""

from __future__ import annotations

from llmhost.engines.base import LaunchSpec, Load, load_from_metrics


class TgiAdapter:
    """TGI's launcher: `/health` is 200 once the shards are up."""

    kind = "tgi"
    health_path = "/health"
    ready_path = "/health"
    metrics_path: str | None = "/metrics"
    supports_embeddings = False  # TGI serves generation; embeddings are TEI's job

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """`text-generation-launcher` arguments."""
        args = [
            "--model-id", spec.weights, "--hostname", spec.host, "--port", str(spec.port),
            "--max-total-tokens", str(spec.context),
            "--max-concurrent-requests", str(max(spec.parallel, 1) * 8),
            "--num-shard", str(spec.tensor_parallel),
        ]  # fmt: skip
        if spec.quantization:
            args += ["--quantize", spec.quantization]
        if spec.dtype:
            args += ["--dtype", spec.dtype]
        return [*args, *spec.extra_args]

    def launch_env(self, spec: LaunchSpec) -> dict[str, str]:
        """Nothing beyond flags (HF_TOKEN comes from a secret)."""
        return {}

    def read_load(self, metrics_text: str) -> Load | None:
        """Batch size as running, queue size as waiting."""
        return load_from_metrics(
            metrics_text, running="tgi_batch_current_size", waiting="tgi_queue_size"
        )
