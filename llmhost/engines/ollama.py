"""Ollama, through its OpenAI-compatible `/v1` endpoints.

Ollama has no Prometheus page, so the gateway falls back to its own in-flight count for load.
Context and parallelism are environment variables (`OLLAMA_CONTEXT_LENGTH`, `OLLAMA_NUM_PARALLEL`),
and the model must be pulled (`ollama pull`) before it is served.
"""

from __future__ import annotations

from llmhost.engines.base import AdapterBase, LaunchSpec


class OllamaAdapter(AdapterBase):
    """`ollama serve`: `/` answers once the server is up; `/api/version` when it can serve."""

    kind = "ollama"
    health_path = "/"
    ready_path = "/api/version"
    metrics_path: str | None = None
    supports_embeddings = True

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """`ollama serve`; everything else is environment."""
        return ["serve", *spec.extra_args]

    def launch_env(self, spec: LaunchSpec) -> dict[str, str]:
        """Listen address, context length and parallel requests."""
        return {
            "OLLAMA_HOST": f"{spec.host}:{spec.port}",
            "OLLAMA_CONTEXT_LENGTH": str(spec.context),
            "OLLAMA_NUM_PARALLEL": str(spec.parallel),
        }
