"""Calibration: fit the planner's efficiency factors for one engine on one kind of hardware to a
benchmark (`llmhost bench --out`), and show prediction against measurement.

From the one-request-at-a-time level of the benchmark:
- prefill tokens/s = prompt tokens / TTFT (medians); prefill is compute-bound, so the engine's
  `compute_efficiency` scales by measured / predicted;
- single-stream decode tokens/s = 1 / TPOT (median); a batch-1 step is memory-bound, so
  `bandwidth_efficiency` is set so that the step's memory time plus the engine's fixed step
  overhead equals 1 / measured tokens/s.
An efficiency above 1 means the hardware entry's peak figure is below what this host reaches.

For vLLM the same two figures are fitted through the step model (`llmhost.plan.step`): the
bandwidth efficiency that makes one decode step of one sequence take the measured TPOT, and the
compute efficiency that makes the prompt's prefill steps plus the per-request cost take the
measured TTFT. When the benchmark also ran a busier level, the per-sequence CPU cost per step
(`step_overhead_per_seq_us`) is fitted so that a step at that level's running batch takes its
measured TPOT: the term that makes the step grow with the batch beyond the GEMMs and attention.
llama.cpp keeps the whole-model roofline it was measured with here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmhost.errors import UsageError
from llmhost.plan.architecture import ModelSpec
from llmhost.plan.batching import batch_limits
from llmhost.plan.catalog import Catalog, EngineProfile, Gpu, WeightFormat
from llmhost.plan.memory import kv_bytes_per_sequence, weights_read_per_step
from llmhost.plan.speed import Hardware, decode_step_seconds, prefill_tokens_per_second
from llmhost.plan.step import Replica, model_cost, step_seconds


@dataclass(frozen=True)
class Measurement:
    """What a benchmark measured, one request at a time, and on what."""

    model: str
    gpu: str
    engine: str
    quantization: str
    prompt_tokens: float
    output_tokens: float
    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    ttft_s: float
    source: str
    tensor_parallel: int = 1
    busy_concurrency: int = 0  # the busiest level's concurrency (0: only one at a time)
    busy_tpot_s: float = 0.0


@dataclass(frozen=True)
class Prediction:
    """The speed model's figures for one request at a time."""

    decode_tokens_per_s: float
    prefill_tokens_per_s: float
    ttft_s: float


def read_measurement(path: Path) -> Measurement:
    """The concurrency-1 level of a `llmhost bench --out` results.json."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise UsageError(f"{path} is not JSON written by `llmhost bench --out`") from None
    return measurement_from(data, str(path))


def measurement_from(data: dict[str, Any], source: str) -> Measurement:
    """The measurement in a results document (its one-at-a-time level)."""
    meta = data.get("meta") or {}
    missing = [k for k in ("catalog_model", "gpu", "engine", "quantization") if not meta.get(k)]
    if missing:
        raise UsageError(
            f"{source}: the benchmark does not say its {', '.join(missing)}; run "
            "`llmhost bench` with --plan, or --catalog-model, --gpu, --engine and "
            "--quant"
        )
    levels = data.get("levels") or []
    single = next((lv for lv in levels if lv.get("concurrency") == 1), None)
    if single is None:
        raise UsageError(f"{source}: no level with concurrency 1 (one request at a time)")
    requests = [r for r in single["requests"] if r["error"] is None and r["tpot"]]
    if not requests:
        raise UsageError(f"{source}: no successful request with 2+ output tokens to fit to")
    summary = single["summary"]
    prompt = _median([r["prompt_tokens"] for r in requests])
    ttft = summary["ttft_s"]["median"]
    busy = max(levels, key=lambda lv: lv.get("concurrency") or 0)
    busy_c = int(busy.get("concurrency") or 0)
    busy_tpot = (busy.get("summary") or {}).get("tpot_s", {}).get("median") or 0.0
    if busy_c <= 1:
        busy_c, busy_tpot = 0, 0.0
    return Measurement(
        model=meta["catalog_model"],
        gpu=meta["gpu"],
        engine=meta["engine"],
        quantization=meta["quantization"],
        prompt_tokens=prompt,
        output_tokens=_median([r["output_tokens"] for r in requests]),
        decode_tokens_per_s=1.0 / summary["tpot_s"]["median"],
        prefill_tokens_per_s=prompt / ttft,
        ttft_s=ttft,
        source=source,
        tensor_parallel=int(meta.get("tensor_parallel") or 1),
        busy_concurrency=busy_c,
        busy_tpot_s=float(busy_tpot),
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def predict(
    spec: ModelSpec,
    fmt: WeightFormat,
    catalog: Catalog,
    gpu: Gpu,
    profile: EngineProfile,
    prompt: float,
    output: float,
    tp: int = 1,
) -> Prediction:
    """Decode and prefill speed and TTFT of one request at a time."""
    if profile.id == "vllm":
        return _vllm_predict(spec, fmt, catalog, gpu, profile, prompt, output, tp)
    hw = Hardware(gpu, profile)
    step = decode_step_seconds(spec, fmt, catalog, hw, 1, int(prompt + output / 2))
    prefill = prefill_tokens_per_second(spec, fmt, hw, int(prompt))
    return Prediction(1.0 / step, prefill, prompt / prefill + step)


def _vllm_predict(
    spec: ModelSpec,
    fmt: WeightFormat,
    catalog: Catalog,
    gpu: Gpu,
    profile: EngineProfile,
    prompt: float,
    output: float,
    tp: int,
) -> Prediction:
    rep = Replica(gpu, profile, tp)
    cost = model_cost(spec, fmt, catalog)
    budget = batch_limits(profile, gpu).max_num_batched_tokens
    p = int(prompt)
    chunk = min(p, budget)
    prefill_s = math.ceil(p / chunk) * step_seconds(cost, fmt, rep, 0, 0, chunk, p / 2)
    step = step_seconds(cost, fmt, rep, 1, prompt + output / 2)
    ttft = profile.request_overhead_ms / 1000 + prefill_s
    return Prediction(1.0 / step, prompt / prefill_s, ttft)


def _solve(f: Callable[[float], float], target: float, low: float, high: float) -> float:
    """x in [low, high] with f(x) = target, for f monotone (bisection; clamps at the ends)."""
    rising = f(high) > f(low)
    for _ in range(60):
        mid = (low + high) / 2
        if (f(mid) < target) == rising:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _vllm_fit(
    spec: ModelSpec,
    fmt: WeightFormat,
    catalog: Catalog,
    gpu: Gpu,
    profile: EngineProfile,
    m: Measurement,
) -> EngineProfile:
    tp, p, o = m.tensor_parallel, m.prompt_tokens, m.output_tokens
    cost = model_cost(spec, fmt, catalog)

    def single(prof: EngineProfile) -> Prediction:
        """One request at a time under `prof`."""
        return _vllm_predict(spec, fmt, catalog, gpu, prof, p, o, tp)

    def busy_step(prof: EngineProfile) -> float:
        """A step of the busiest level's running batch under `prof`."""
        others = (m.busy_concurrency - 1) * p / o
        rep = Replica(gpu, prof, tp)
        return step_seconds(cost, fmt, rep, m.busy_concurrency, p + o / 2, others, p / 2)

    def settle(prof: EngineProfile) -> EngineProfile:
        """One pass: bandwidth from decode, compute from TTFT, per-sequence cost from the busy
        step, each with the others fixed."""
        bw = _solve(
            lambda x: single(dataclasses.replace(prof, bandwidth_efficiency=x)).decode_tokens_per_s,
            m.decode_tokens_per_s,
            0.01,
            10.0,
        )
        prof = dataclasses.replace(prof, bandwidth_efficiency=bw)
        ce = _solve(
            lambda x: single(dataclasses.replace(prof, compute_efficiency=x)).ttft_s,
            m.ttft_s,
            0.01,
            10.0,
        )
        prof = dataclasses.replace(prof, compute_efficiency=ce)
        if m.busy_concurrency:
            per_seq = _solve(
                lambda x: busy_step(dataclasses.replace(prof, step_overhead_per_seq_us=x)),
                m.busy_tpot_s,
                0.0,
                2000.0,
            )
            prof = dataclasses.replace(prof, step_overhead_per_seq_us=per_seq)
        return prof

    fitted = profile
    for _ in range(8):  # the three terms interact a little: alternate until they settle
        fitted = settle(fitted)
    return fitted


def fit(
    spec: ModelSpec,
    fmt: WeightFormat,
    catalog: Catalog,
    gpu: Gpu,
    profile: EngineProfile,
    m: Measurement,
) -> EngineProfile:
    """The engine profile with compute and bandwidth efficiency fitted to `m` (and, for vLLM
    with a busier level measured, the per-sequence step cost)."""
    if profile.id == "vllm":
        return _vllm_fit(spec, fmt, catalog, gpu, profile, m)
    before = predict(spec, fmt, catalog, gpu, profile, m.prompt_tokens, m.output_tokens)
    compute = profile.compute_efficiency * m.prefill_tokens_per_s / before.prefill_tokens_per_s
    fitted = dataclasses.replace(profile, compute_efficiency=compute)
    memory_s = 1.0 / m.decode_tokens_per_s - profile.step_overhead_ms / 1000
    if memory_s <= 0:
        overhead = profile.step_overhead_ms
        raise UsageError(
            f"measured {m.decode_tokens_per_s:.0f} tokens/s is faster than the "
            f"engine's fixed step overhead ({overhead} ms) allows"
        )
    hw = Hardware(gpu, fitted)
    context = int(m.prompt_tokens + m.output_tokens / 2)
    read = weights_read_per_step(spec, fmt, catalog, 1) + kv_bytes_per_sequence(
        spec, context, profile.kv_dtype_bytes
    )
    at_full_bandwidth = read / (gpu.bandwidth_gbs * 1e9) / hw.parallel_speedup
    return dataclasses.replace(fitted, bandwidth_efficiency=at_full_bandwidth / memory_s)


def comparison(before: Prediction, after: Prediction, m: Measurement) -> list[tuple[str, ...]]:
    """Rows of figure, predicted before, predicted after, measured, after/measured."""
    rows: list[tuple[str, ...]] = []
    for name, attr, unit in (
        ("decode, one stream", "decode_tokens_per_s", "tokens/s"),
        ("prefill", "prefill_tokens_per_s", "tokens/s"),
        ("TTFT", "ttft_s", "s"),
    ):
        measured = getattr(m, attr)
        b, a = getattr(before, attr), getattr(after, attr)
        rows.append(
            (f"{name} ({unit})", f"{b:.3g}", f"{a:.3g}", f"{measured:.3g}", f"{a / measured:.2f}")
        )
    return rows


def calibrate(
    model: str, m: Measurement, measure_host: bool = False
) -> tuple[EngineProfile, list[tuple[str, ...]]]:
    """The fitted engine profile for planning `model` on the measured hardware, and the rows
    comparing prediction (before and after) with the measurement."""
    from llmhost.plan.catalog import load_catalog
    from llmhost.plan.host import cpu_gpu
    from llmhost.plan.sources import resolve_model

    catalog = load_catalog()
    spec = resolve_model(model, catalog).spec
    fmt = catalog.format(m.quantization)
    gpu = catalog.gpu(m.gpu)
    if gpu.is_cpu:
        gpu = cpu_gpu(gpu, measure=measure_host)
    profile = catalog.engine(m.engine)
    fitted = fit(spec, fmt, catalog, gpu, profile, m)
    tp = m.tensor_parallel
    before = predict(spec, fmt, catalog, gpu, profile, m.prompt_tokens, m.output_tokens, tp)
    after = predict(spec, fmt, catalog, gpu, fitted, m.prompt_tokens, m.output_tokens, tp)
    return fitted, comparison(before, after, m)
