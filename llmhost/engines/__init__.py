"""Engines: the adapters that describe each kind, the llama-server build, the vLLM install, the
local supervisor."""

from __future__ import annotations

from llmhost.engines.base import EngineAdapter, LaunchSpec, Load
from llmhost.engines.llamacpp import LlamaCppAdapter
from llmhost.engines.ollama import OllamaAdapter
from llmhost.engines.openai_compat import OpenAICompatAdapter
from llmhost.engines.tgi import TgiAdapter
from llmhost.engines.vllm import VllmAdapter
from llmhost.errors import UnknownChoiceError

ADAPTERS: dict[str, EngineAdapter] = {
    a.kind: a
    for a in (
        LlamaCppAdapter(),
        VllmAdapter(),
        OllamaAdapter(),
        TgiAdapter(),
        OpenAICompatAdapter(),
    )
}

__all__ = ["ADAPTERS", "EngineAdapter", "LaunchSpec", "Load", "adapter"]


def adapter(kind: str) -> EngineAdapter:
    """The adapter for an engine kind (llamacpp, vllm, ollama, tgi, openai)."""
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise UnknownChoiceError("engine", kind, ADAPTERS) from None
