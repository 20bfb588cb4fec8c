"""The one small interface every engine adapter implements, and the values it deals in.

An adapter describes an engine from the outside: how to launch it for a model, where to ask
whether it is alive and ready, and which of its own metrics say how busy it is. The local
supervisor, the gateway's health and load checks, and Kubernetes rendering all read the same
adapter, so an engine's flags and URLs are written down once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Load:
    """How busy an engine says it is: requests running, requests queued, KV cache used (0-1),
    and, where the engine counts them (vLLM), prompt tokens looked up in and found in its prefix
    cache since it started."""

    running: float
    waiting: float
    kv_usage: float | None = None
    prefix_queries: float | None = None
    prefix_hits: float | None = None

    @property
    def prefix_hit_rate(self) -> float | None:
        """Share of looked-up prompt tokens found in the prefix cache (since start), or None."""
        if not self.prefix_queries or self.prefix_hits is None:
            return None
        return self.prefix_hits / self.prefix_queries


@dataclass(frozen=True)
class LaunchSpec:
    """What an engine needs to serve one model; made from config or from a `Plan`."""

    weights: str  # local file path (llama.cpp) or a Hugging Face repo id (vLLM, TGI)
    served_name: str
    context: int  # tokens per sequence
    parallel: int = 1  # sequences decoded together (llama.cpp slots, vLLM max-num-seqs)
    host: str = "127.0.0.1"
    port: int = 8080
    chat_template: str | None = None
    threads: int | None = None
    tensor_parallel: int = 1
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None
    prefix_reuse: bool = False  # keep what it takes to reuse any cached prompt prefix
    cpu_kv_cache_gib: float | None = None  # vLLM on CPU: KV cache space (VLLM_CPU_KVCACHE_SPACE)
    extra_args: tuple[str, ...] = field(default_factory=tuple)


class EngineAdapter(Protocol):
    """An engine kind as the supervisor, the gateway and the renderer see it."""

    kind: str
    health_path: str  # alive (process answers)
    ready_path: str  # model loaded, can take requests
    metrics_path: str | None  # Prometheus text, or None when the engine has none
    supports_embeddings: bool

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """The engine's command-line arguments (after the executable) for `spec`."""
        ...

    def launch_env(self, spec: LaunchSpec) -> dict[str, str]:
        """Environment variables the engine reads instead of flags."""
        ...

    def read_load(self, metrics_text: str) -> Load | None:
        """The engine's load from its metrics page, or None if the page does not say."""
        ...

    tokenize_path: str | None  # the engine's tokenizer endpoint, or None when it has none

    def tokenize_body(self, text: str, model: str) -> bytes:
        """The JSON body that asks the engine to tokenize `text` (with its special tokens)."""
        ...

    def token_count(self, response: bytes) -> int | None:
        """How many tokens the tokenizer endpoint's answer lists; None if it is not readable."""
        ...


class AdapterBase:
    """What most adapters share: no environment, load read from named metrics.

    Subclasses name their metrics; an engine without them leaves `running_metric` None and the
    gateway falls back to its own in-flight count.
    """

    running_metric: str | None = None
    waiting_metric: str = ""
    kv_metrics: tuple[tuple[str, float], ...] = ()  # KV-usage metric names, scale to 0-1
    tokenize_path: str | None = None

    def tokenize_body(self, text: str, model: str) -> bytes:
        """llama-server's form, `{"content": ..., "add_special": true}` (vLLM overrides it)."""
        return orjson.dumps({"content": text, "add_special": True})

    def token_count(self, response: bytes) -> int | None:
        """The length of `tokens` in the answer (llama-server and vLLM both list them)."""
        try:
            tokens = orjson.loads(response).get("tokens")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return len(tokens) if isinstance(tokens, list) else None

    def launch_env(self, spec: LaunchSpec) -> dict[str, str]:
        """Environment variables the engine needs besides its flags (none by default)."""
        return {}

    def read_load(self, metrics_text: str) -> Load | None:
        """The engine's load from its metrics page, or None if it does not report one."""
        if self.running_metric is None:
            return None
        return load_from_metrics(
            metrics_text, self.running_metric, self.waiting_metric, dict(self.kv_metrics)
        )


def sample_values(metrics_text: str, names: Iterable[str]) -> dict[str, float]:
    """Sum the samples of each named metric in a Prometheus text page (labels summed over)."""
    wanted = set(names)
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name in wanted:
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def load_from_metrics(
    metrics_text: str, running: str, waiting: str, kv: Mapping[str, float] | None = None
) -> Load | None:
    """Read a `Load` from metric names; `kv` maps KV-usage metric names to the scale to 0-1.

    `kv` may list several names (engines renamed them between releases); the first present wins.
    """
    kv = kv or {}
    values = sample_values(metrics_text, [running, waiting, *kv])
    if running not in values and waiting not in values:
        return None
    kv_usage = next((values[n] * scale for n, scale in kv.items() if n in values), None)
    return Load(values.get(running, 0.0), values.get(waiting, 0.0), kv_usage)
