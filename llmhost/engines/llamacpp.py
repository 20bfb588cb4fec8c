"""llama.cpp's `llama-server`: what its load log says about memory.

`parse_memory_report` reads the buffer sizes llama-server logs while loading a model (run with
`-lv 4`), so the planner's llama.cpp memory model can be checked against the real engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmhost.plan.catalog import MIB

_BUFFER = re.compile(r"(?P<where>\S+)\s+(?P<kind>model|KV|compute|output) buffer size =\s+"
                     r"(?P<mib>[0-9.]+) MiB")  # fmt: skip


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
