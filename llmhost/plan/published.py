"""Published serving measurements (`catalog/measurements.yaml`) and the planner's figure for each.

Each case names its setup (model, GPU, TP, weights, KV dtype, lengths, concurrency, engine) and
one figure it measured. `predict` plans exactly that setup with `plan_for` and reads the same
figure off the candidate: its curve point at the case's concurrency, or, for vLLM's
`benchmark_latency` (a batch run at once), one prefill of the whole batch plus output - 1 decode
steps of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from llmhost.errors import UsageError
from llmhost.plan.batching import batch_limits
from llmhost.plan.catalog import Catalog, EngineProfile, load_catalog
from llmhost.plan.step import Replica, model_cost, step_seconds

FIGURES = ("decode_tokens_per_s_single", "aggregate_tokens_per_s", "ttft_s", "batch_latency_s")


@dataclass(frozen=True)
class Case:
    """One published figure and the setup it was measured on."""

    id: str
    model: str
    gpu: str
    tp: int
    weights: str
    kv_cache_dtype: str
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    engine: str
    figure: str
    measured: float
    source: str
    as_of: str
    model_note: str = ""
    note: str = ""
    scored: bool = True  # False: shown, but outside the accuracy score (the note says why)


@cache
def load_cases() -> tuple[Case, ...]:
    """Every case in the shipped measurements file."""
    text = files("llmhost.plan.catalog").joinpath("measurements.yaml").read_text()
    rows: list[dict[str, Any]] = yaml.safe_load(text)["cases"]
    cases = tuple(Case(**row) for row in rows)
    for case in cases:
        if case.figure not in FIGURES:
            raise UsageError(f"measurements.yaml [{case.id}]: unknown figure {case.figure}")
    return cases


def predict(
    case: Case, catalog: Catalog | None = None, engine: EngineProfile | None = None
) -> float:
    """The planner's value of `case.figure` for the case's setup."""
    from llmhost.plan import plan_for

    catalog = catalog or load_catalog()
    engine = engine or catalog.engine("vllm")
    kv = "fp8" if case.kv_cache_dtype == "fp8" else "auto"
    if case.figure == "batch_latency_s":
        return _batch_latency(case, catalog, engine, kv)
    plan = plan_for(
        case.model,
        gpus=[case.gpu],
        quantizations=[case.weights],
        context=case.prompt_tokens + case.output_tokens,
        prompt_tokens=case.prompt_tokens,
        output_tokens=case.output_tokens,
        concurrency=case.concurrency,
        kv_cache_dtype=kv,
        tensor_parallel=case.tp,
        engine_profile=engine,
    )
    cand = next((c for c in plan.candidates if c.fits and c.shape.ep == 1), None)
    if cand is None:
        raise UsageError(f"{case.id}: the planner finds this setup does not fit")
    pt = next(p for p in cand.curve if p.concurrency == case.concurrency)
    if case.figure == "decode_tokens_per_s_single":
        return cand.curve[0].per_user_tokens_per_s
    if case.figure == "aggregate_tokens_per_s":
        return pt.aggregate_tokens_per_s
    return pt.ttft_s


def _batch_latency(case: Case, catalog: Catalog, engine: EngineProfile, kv: str) -> float:
    spec, fmt, gpu = catalog.model(case.model), catalog.format(case.weights), catalog.gpu(case.gpu)
    rep = Replica(gpu, engine, case.tp, 1, 1, 1 if kv == "fp8" else 2)
    cost = model_cost(spec, fmt, catalog)
    budget = batch_limits(engine, gpu).max_num_batched_tokens
    batch, p, o = case.concurrency, case.prompt_tokens, case.output_tokens
    chunks = math.ceil(batch * p / budget)
    prefill = chunks * step_seconds(cost, fmt, rep, 0, 0, batch * p / chunks, p / 2)
    decode = sum(step_seconds(cost, fmt, rep, batch, p + i, 0, 0) for i in range(1, o))
    return prefill + decode


def predict_v1(case: Case, catalog: Catalog | None = None) -> float:
    """What the previous planner (one whole-model roofline, flat TP speed-up, no batching of
    prefill into decode) said for the same case: kept to show the two side by side."""
    from llmhost.plan.speed import Hardware, decode_step_seconds, prefill_tokens_per_second

    catalog = catalog or load_catalog()
    spec, fmt, gpu = catalog.model(case.model), catalog.format(case.weights), catalog.gpu(case.gpu)
    hw = Hardware(gpu, catalog.engine("vllm"), case.tp)
    p, o, c = case.prompt_tokens, case.output_tokens, case.concurrency
    context = p + o // 2
    step = decode_step_seconds(spec, fmt, catalog, hw, c, context)
    prefill = prefill_tokens_per_second(spec, fmt, hw, p)
    if case.figure == "decode_tokens_per_s_single":
        return 1 / decode_step_seconds(spec, fmt, catalog, hw, 1, context)
    if case.figure == "aggregate_tokens_per_s":
        return c / step
    if case.figure == "ttft_s":
        return p / prefill + step
    return c * p / prefill + (o - 1) * step


@dataclass(frozen=True)
class Row:
    """One case with the planner's figure (and the previous planner's) against the measurement."""

    case: Case
    predicted: float
    previous: float

    @property
    def ratio(self) -> float:
        """Predicted / measured."""
        return self.predicted / self.case.measured

    @property
    def previous_ratio(self) -> float:
        """The previous planner's predicted / measured."""
        return self.previous / self.case.measured


def evaluate(catalog: Catalog | None = None, engine: EngineProfile | None = None) -> list[Row]:
    """Every published case, predicted by this planner and by the previous one."""
    catalog = catalog or load_catalog()
    return [
        Row(case, predict(case, catalog, engine), predict_v1(case, catalog))
        for case in load_cases()
    ]


KV_FIGURES = ("kv_tokens", "kv_gib", "weights_gib", "kv_tokens_from_pool")


@dataclass(frozen=True)
class KvCase:
    """One start-up figure vLLM logged, and the setup it was logged with.

    `figure` is what `measured` is: "GPU KV cache size" tokens (`kv_tokens`), "Available KV cache
    memory" GiB (`kv_gib`), "Model loading took" GiB per GPU (`weights_gib`), or the tokens
    again, predicted from the logged pool `pool_gib` rather than from the planner's own budget
    (`kv_tokens_from_pool`: the part of the chain that does not depend on the vLLM version).
    """

    id: str
    model: str
    gpu: str
    tp: int
    weights: str
    kv_cache_dtype: str
    gpu_memory_utilization: float
    max_model_len: int
    engine: str
    figure: str
    measured: float
    source: str
    as_of: str
    pool_gib: float | None = None
    model_note: str = ""
    note: str = ""
    scored: bool = True


def parse_kv_cases(text: str) -> tuple[KvCase, ...]:
    """KV cases from the text of a KV measurements file; a malformed case is a UsageError."""
    rows: list[dict[str, Any]] = yaml.safe_load(text)["cases"]
    cases = []
    for row in rows:
        try:
            case = KvCase(**row)
        except TypeError as exc:
            raise UsageError(f"kv_measurements.yaml [{row.get('id')}]: {exc}") from exc
        if case.figure not in KV_FIGURES:
            raise UsageError(f"kv_measurements.yaml [{case.id}]: unknown figure {case.figure}")
        if case.figure == "kv_tokens_from_pool" and not case.pool_gib:
            raise UsageError(
                f"kv_measurements.yaml [{case.id}]: kv_tokens_from_pool needs pool_gib"
            )
        cases.append(case)
    return tuple(cases)


@cache
def kv_cases() -> tuple[KvCase, ...]:
    """Every case in the shipped KV measurements file."""
    return parse_kv_cases(
        files("llmhost.plan.catalog").joinpath("kv_measurements.yaml").read_text()
    )


def predict_kv(case: KvCase, catalog: Catalog | None = None) -> float:
    """The planner's value of the case's start-up figure (tokens or GiB, as `case.figure`)."""
    from llmhost.plan.catalog import GIB
    from llmhost.plan.memory import (
        vllm_in_flight_tokens,
        vllm_kv_tokens,
        vllm_memory,
        weights_bytes,
    )

    catalog = catalog or load_catalog()
    spec, fmt, gpu = catalog.model(case.model), catalog.format(case.weights), catalog.gpu(case.gpu)
    engine = catalog.engine("vllm")
    limits = batch_limits(engine, gpu)
    kv_bytes = 1 if case.kv_cache_dtype == "fp8" else 2
    if case.figure == "kv_tokens_from_pool":
        in_flight = vllm_in_flight_tokens(engine, 1, limits.max_num_batched_tokens)
        pool = int((case.pool_gib or 0) * GIB)
        return float(
            vllm_kv_tokens(
                spec,
                pool,
                case.tp,
                1,
                kv_bytes,
                engine.block_size,
                max_model_len=case.max_model_len,
                in_flight_tokens=in_flight,
            )
        )
    mem = vllm_memory(
        spec,
        weights_bytes(spec, fmt, catalog),
        gpu,
        engine,
        case.tp,
        1,
        case.max_model_len,
        kv_bytes,
        case.gpu_memory_utilization,
        limits.max_num_batched_tokens,
        limits.max_num_seqs,
    )
    if case.figure == "weights_gib":
        return mem.weights / GIB
    return float(mem.kv_tokens) if case.figure == "kv_tokens" else mem.kv_available / GIB


def within(ratio: float, tolerance: float) -> bool:
    """True when a predicted / measured ratio is within `tolerance` either way (0.25 = 25%)."""
    return 1 - tolerance <= ratio <= 1 + tolerance
