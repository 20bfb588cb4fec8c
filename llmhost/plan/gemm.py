"""GEMM time on one GPU: a per-operator roofline whose compute efficiency depends on M.

A linear layer multiplies M tokens (the step's batch: decoding sequences plus prefill chunk
tokens) by an N x K weight matrix. It must read the weights once per step (bytes / achieved
bandwidth) and do 2 x M x N x K FLOPs. Tensor cores reach their peak only on tall matrices: at
small M a GEMM is a matrix-vector product that cannot fill the tiles, so the planner takes

    efficiency(M) = compute_efficiency x M / (M + gemm_half_m)

(`engines.yaml`: the fraction of peak reached at large M, and the M at which half of it is
reached). The time is the larger of the memory and compute times. This is the shape of measured
GEMM tables (NVIDIA's aiconfigurator collects them per GPU, M, N, K and format: flat in M while
memory-bound, then rising to a compute plateau); the two constants are fitted, not looked up.
"""

from __future__ import annotations

from llmhost.plan.catalog import EngineProfile


def gemm_efficiency(m: float, engine: EngineProfile) -> float:
    """Fraction of peak FLOP/s a GEMM with `m` rows reaches."""
    if m <= 0:
        return engine.compute_efficiency
    return engine.compute_efficiency * m / (m + engine.gemm_half_m)


def gemm_seconds(
    m: float,
    params: float,
    weight_bytes: float,
    peak_flops: float,
    bandwidth: float,
    engine: EngineProfile,
    slice_efficiency: float = 1.0,
) -> float:
    """Seconds to multiply `m` tokens by `params` weights stored in `weight_bytes`.

    `bandwidth` is the achieved bytes/s; `slice_efficiency` (<= 1) derates compute for matrices
    too narrow for the kernel's tiles.
    """
    if m <= 0 or params <= 0:
        return 0.0
    memory_s = weight_bytes / bandwidth
    compute_s = 2.0 * m * params / (peak_flops * gemm_efficiency(m, engine) * slice_efficiency)
    return max(memory_s, compute_s)
