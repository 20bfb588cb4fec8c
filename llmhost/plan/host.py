"""Facts about this host for CPU plans: memory from /proc/meminfo, bandwidth and FLOP/s measured.

The catalog's `cpu` entry carries conservative defaults; `measure_host` replaces them with a quick
numpy measurement (a large array copy for bandwidth, a float32 matmul for FLOP/s), cached so a
second plan does not measure again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from llmhost.paths import cache_dir
from llmhost.plan.catalog import Gpu

CACHE = cache_dir() / "host.json"


def host_memory_mib() -> int:
    """Total RAM of this host in MiB (MemTotal), or 0 when it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def measure_host(seconds: float = 1.0) -> dict[str, float]:
    """Measured copy bandwidth (GB/s, read + write) and float32 matmul TFLOP/s of this host."""
    import numpy as np

    src = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB, well beyond the last-level cache
    dst = np.empty_like(src)
    best_bw, deadline = 0.0, time.perf_counter() + seconds / 2
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        np.copyto(dst, src)
        best_bw = max(best_bw, 2 * src.nbytes / (time.perf_counter() - t) / 1e9)
    a = np.ones((1024, 1024), dtype=np.float32)
    best_fl, deadline = 0.0, time.perf_counter() + seconds / 2
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        a @ a
        best_fl = max(best_fl, 2 * 1024**3 / (time.perf_counter() - t) / 1e12)
    return {"bandwidth_gbs": round(best_bw, 2), "tflops": round(best_fl, 4)}


def cpu_gpu(base: Gpu, measure: bool = False, memory_mib: int | None = None) -> Gpu:
    """The catalog's `cpu` entry filled in for this host (memory always; speed when measured)."""
    changes: dict[str, object] = {"memory_mib": memory_mib or host_memory_mib() or None}
    facts: dict[str, float] | None = None
    if measure:
        facts = measure_host()
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(facts))
    elif CACHE.is_file():
        try:
            facts = json.loads(CACHE.read_text())
        except (OSError, ValueError):
            facts = None
    if facts:
        changes["bandwidth_gbs"] = float(facts["bandwidth_gbs"])
        changes["tflops_bf16"] = float(facts["tflops"])
        changes["source"] = f"measured on this host ({CACHE})"
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
