"""Any OpenAI-compatible server llmhost does not launch (a hosted API, LM Studio, SGLang...).

Named `openai_compat` so it never shadows the `openai` client package.
"""

from __future__ import annotations

from llmhost.engines.base import AdapterBase, LaunchSpec
from llmhost.errors import UsageError


class OpenAICompatAdapter(AdapterBase):
    """An external server: readiness is `/v1/models` answering; no load metrics."""

    kind = "openai"
    health_path = "/v1/models"
    ready_path = "/v1/models"
    metrics_path: str | None = None
    supports_embeddings = True

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """Not launchable: an `openai` engine is always given by URL."""
        raise UsageError(
            f"model '{spec.served_name}': engine 'openai' needs 'urls'; llmhost cannot launch it"
        )
