"""The planner's step model next to NVIDIA's aiconfigurator (measured per-operator tables) on the
published cases aiconfigurator covers, in one run.

For each case of `llmhost/plan/catalog/measurements.yaml` on a GPU with aiconfigurator tables for
vLLM (H100 SXM, H200 SXM, A100 SXM, L40S), the same setup is compiled with
`aiconfigurator_core.sdk.engine.EngineHandle` (vLLM backend, the case's TP and GEMM format) and
the case's figure computed from it: single-stream decode from `predict_decode_latency(1, ...)`,
TTFT from `predict_prefill_latency(1, prompt)`, aggregate tokens/s and batch latency from
`run_static` (aiconfigurator's static batch: every prompt, then every decode step; it has no
closed-loop queueing). Needs the optional extra: `pip install -c constraints.txt -e
'.[aiconfigurator]'`.

Prints a Markdown table, then one line of JSON: `cases` covered, and for the planner and for
aiconfigurator `within_25pct`, `within_2x` and `median_abs_error` (|predicted / measured - 1|).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.plan.published import Case, load_cases, predict, within  # noqa: E402

SYSTEMS = {
    "h100-80gb": "h100_sxm",
    "h200": "h200_sxm",
    "a100-40gb": "a100_sxm",
    "a100-80gb": "a100_sxm",
    "l40s": "l40s",
}
MODELS = {
    "llama-3.1-8b": "meta-llama/Meta-Llama-3.1-8B",
    "llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B",
}
GEMM = {"fp8": "fp8", "bf16": "bfloat16", "fp16": "bfloat16"}


def _engine(case: Case, cache: dict[tuple[str, str, int, str], Any]) -> Any:
    from aiconfigurator_core.sdk.engine import EngineHandle

    key = (case.model, case.gpu, case.tp, case.weights)
    if key not in cache:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cache[key] = EngineHandle.compile(
                MODELS[case.model],
                SYSTEMS[case.gpu],
                "vllm",
                tp_size=case.tp,
                gemm_quant_mode=GEMM[case.weights],
                kvcache_quant_mode="fp8" if case.kv_cache_dtype == "fp8" else "bfloat16",
            )
    return cache[key]


def aiconfigurator_figure(case: Case, cache: dict[tuple[str, str, int, str], Any]) -> float:
    """aiconfigurator's value of the case's figure."""
    h = _engine(case, cache)
    p, o, c = case.prompt_tokens, case.output_tokens, case.concurrency
    if case.figure == "decode_tokens_per_s_single":
        return float((o - 1) * 1000 / h.predict_decode_latency(1, p, o))
    if case.figure == "ttft_s":
        return float(h.predict_prefill_latency(1, p) / 1000)
    total_ms = h.run_static(batch_size=c, isl=p, osl=o)[2]
    if case.figure == "aggregate_tokens_per_s":
        return float(c * o * 1000 / total_ms)
    return float(total_ms / 1000)


def _summary(ratios: list[float]) -> dict[str, float]:
    return {
        "within_25pct": sum(within(r, 0.25) for r in ratios),
        "within_2x": sum(0.5 <= r <= 2 for r in ratios),
        "median_abs_error": round(statistics.median(abs(r - 1) for r in ratios), 3),
    }


def main() -> None:
    try:
        import aiconfigurator_core  # noqa: F401
    except ImportError:
        sys.exit("needs aiconfigurator-core: pip install -c constraints.txt -e '.[aiconfigurator]'")
    cases = [c for c in load_cases() if c.gpu in SYSTEMS and c.model in MODELS]
    cache: dict[tuple[str, str, int, str], Any] = {}
    print("| case | figure | measured | planner | ratio | aiconfigurator | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    ours, theirs = [], []
    for case in cases:
        mine, aic = predict(case), aiconfigurator_figure(case, cache)
        ours.append(mine / case.measured)
        theirs.append(aic / case.measured)
        print(
            f"| {case.id} | {case.figure} | {case.measured:.4g} | {mine:.4g} | "
            f"{ours[-1]:.2f} | {aic:.4g} | {theirs[-1]:.2f} |"
        )
    print(
        json.dumps(
            {"cases": len(cases), "planner": _summary(ours), "aiconfigurator": _summary(theirs)}
        )
    )


if __name__ == "__main__":
    main()
