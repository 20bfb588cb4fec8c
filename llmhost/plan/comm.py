"""Communication inside a replica: tensor-parallel all-reduce and pipeline hops, per link type.

- All-reduce (ring, as NCCL and vLLM's custom all-reduce): every GPU sends and receives
  2 x (n - 1) / n of the message; time = latency + that / bus bandwidth. The link is the GPU's
  `link_gbs` / `link_latency_us` in `gpus.yaml` (NVLink: hundreds of GB/s and a few
  microseconds; PCIe: tens of GB/s and tens of microseconds). Source: NCCL's
  performance notes (nccl-tests `doc/PERFORMANCE.md`, bus bandwidth = algbw x 2(n-1)/n).
- A pipeline hop sends one micro-batch's hidden states to the next stage across nodes:
  `network_latency_us` + bytes / `network_gbs`.
"""

from __future__ import annotations

from llmhost.plan.catalog import Gpu


def all_reduce_seconds(message_bytes: float, gpus: int, gpu: Gpu) -> float:
    """Seconds for one all-reduce of `message_bytes` across `gpus` GPUs of one node."""
    if gpus <= 1:
        return 0.0
    if gpu.link_gbs <= 0:
        raise ValueError(f"GPU '{gpu.id}' has no link bandwidth for tensor parallelism")
    traffic = 2 * (gpus - 1) / gpus * message_bytes
    return gpu.link_latency_us * 1e-6 + traffic / (gpu.link_gbs * 1e9)


def pipeline_hop_seconds(message_bytes: float, gpu: Gpu) -> float:
    """Seconds to pass one micro-batch's activations to the next pipeline stage (next node)."""
    return gpu.network_latency_us * 1e-6 + message_bytes / (gpu.network_gbs * 1e9)
