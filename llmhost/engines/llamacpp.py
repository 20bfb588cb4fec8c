"""llama.cpp's `llama-server`: its adapter, and what its load log says about memory.

The adapter launches llama-server with continuous batching over `parallel` slots, its Prometheus
page on, and an explicit chat template when the GGUF carries none. `parse_memory_report` reads the
buffer sizes llama-server logs while loading a model (run with `-lv 4`), so the planner's
llama.cpp memory model can be checked against the real engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmhost.engines.base import AdapterBase, LaunchSpec
from llmhost.plan.catalog import MIB


def chat_template_args(template: str) -> list[str]:
    """Flags for a chat template given as a built-in name, a Jinja file, or Jinja text.

    llama-server treats `--chat-template` as Jinja text unless Jinja is off, so a built-in name
    such as `gemma` needs `--no-jinja` to select llama.cpp's own template of that name.
    """
    if "{{" in template or "{%" in template:
        return ["--jinja", "--chat-template", template]
    if template.endswith(".jinja"):
        return ["--jinja", "--chat-template-file", template]
    return ["--no-jinja", "--chat-template", template]


class LlamaCppAdapter(AdapterBase):
    """llama.cpp's llama-server: OpenAI endpoints, `/health` (503 while loading), `/metrics`.

    Load: slots busy (`requests_processing`) and queued (`requests_deferred`).
    """

    kind = "llamacpp"
    health_path = "/health"
    ready_path = "/health"
    metrics_path: str | None = "/metrics"
    supports_embeddings = True  # when started with --embeddings
    running_metric = "llamacpp:requests_processing"
    waiting_metric = "llamacpp:requests_deferred"
    kv_metrics = (("llamacpp:kv_cache_usage_ratio", 1.0),)
    tokenize_path: str | None = "/tokenize"

    def launch_args(self, spec: LaunchSpec) -> list[str]:
        """llama-server flags: the context is split evenly over `parallel` slots; with
        `prefix_reuse`, full-size sliding-window KV so cached prefixes restore whole."""
        args = [
            "--model",
            spec.weights,
            "--alias",
            spec.served_name,
            "--host",
            spec.host,
            "--port",
            str(spec.port),
            "--ctx-size",
            str(spec.context * spec.parallel),
            "--parallel",
            str(spec.parallel),
            "--metrics",
            "--no-webui",
        ]
        if spec.threads:
            args += ["--threads", str(spec.threads)]
        if spec.chat_template:
            args += chat_template_args(spec.chat_template)
        if spec.prefix_reuse and "--swa-full" not in spec.extra_args:
            # Sliding-window layers (Gemma 3) otherwise keep only the last window, and a prompt
            # restored from the prompt cache can reuse at most that much of its prefix.
            args.append("--swa-full")
        if spec.kv_cache_dtype:
            args += ["--cache-type-k", spec.kv_cache_dtype, "--cache-type-v", spec.kv_cache_dtype]
        return [*args, *spec.extra_args]


_BUFFER = re.compile(
    r"(?P<where>\S+)\s+(?P<kind>model|KV|compute|output) buffer size =\s+"
    r"(?P<mib>[0-9.]+) MiB"
)


@dataclass(frozen=True)
class EngineMemory:
    """Bytes llama-server reported allocating, by buffer kind."""

    model: int
    kv: int
    compute: int
    output: int

    @property
    def total(self) -> int:
        """All buffers together."""
        return self.model + self.kv + self.compute + self.output


def parse_memory_report(log: str) -> EngineMemory:
    """Sum llama-server's logged buffer sizes per kind over all devices.

    CPU_REPACK buffers hold weights moved out of the memory-mapped file into an interleaved
    layout; the mapped pages they came from are never touched, so they are not counted twice.
    """
    sums = {"model": 0.0, "KV": 0.0, "compute": 0.0, "output": 0.0}
    for match in _BUFFER.finditer(log):
        if match["where"] != "CPU_REPACK":
            sums[match["kind"]] += float(match["mib"])
    if not sums["model"]:
        raise ValueError("no 'model buffer size' line: was llama-server run with -lv 4?")
    return EngineMemory(
        model=int(sums["model"] * MIB),
        kv=int(sums["KV"] * MIB),
        compute=int(sums["compute"] * MIB),
        output=int(sums["output"] * MIB),
    )
