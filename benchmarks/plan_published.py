"""The planner against published serving measurements, side by side with the previous planner.

Every case in `llmhost/plan/catalog/measurements.yaml` (model, GPU, TP, weights, KV dtype,
lengths, concurrency, engine and version, source) is planned with exactly that setup; the figure
the source measured (single-stream decode tokens/s, aggregate tokens/s at the stated
concurrency, TTFT, or a batch's end-to-end latency) is read off the plan and compared. The
previous planner's figure (one whole-model roofline per step, a flat 0.88 x TP speed-up, prefill
outside decode) is computed in the same run for comparison.

Prints a Markdown table (pasted into the README's Plan section), then one line of JSON:
`cases` (scored), `not_scored` (shown with the reason, outside the score), `within_25pct`,
`within_2x`, `share_within_25pct`, `worst_ratio` (furthest from 1, predicted / measured) and
the same shares for the previous planner, then `kv_cases`, `kv_within_5pct` and
`kv_worst_ratio` for vLLM's start-up figures (`kv_measurements.yaml`: "GPU KV cache size", the
KV pool, the weights and the tokens from the logged pool, printed as a second table).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmhost.plan.published import Row, evaluate, kv_cases, predict_kv, within  # noqa: E402

KV_NAMES = {
    "kv_tokens": "GPU KV cache size (tokens)",
    "kv_gib": "KV pool (GiB)",
    "weights_gib": "Model loading took (GiB per GPU)",
    "kv_tokens_from_pool": "GPU KV cache size from the logged pool (tokens)",
}

UNITS = {
    "decode_tokens_per_s_single": ("decode, 1 user", "tok/s"),
    "aggregate_tokens_per_s": ("aggregate", "tok/s"),
    "ttft_s": ("TTFT", "s"),
    "batch_latency_s": ("batch latency", "s"),
}


def _fmt(value: float) -> str:
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def table(rows: list[Row]) -> str:
    """The comparison as a Markdown table."""
    out = [
        "| case | setup | figure | measured | planner | ratio | previous planner |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r.case
        name, unit = UNITS[c.figure]
        setup = (
            f"{c.model} {c.weights} on {c.tp}x {c.gpu}, {c.prompt_tokens}/{c.output_tokens} "
            f"tokens, {c.concurrency} concurrent, {c.engine}"
        )
        label = c.id if c.scored else f"{c.id} (not scored: {c.note})"
        out.append(
            f"| [{label}]({c.source}) | {setup} | {name} ({unit}) | {_fmt(c.measured)} | "
            f"{_fmt(r.predicted)} | {r.ratio:.2f} | {r.previous_ratio:.2f} |"
        )
    return "\n".join(out)


def kv_table() -> tuple[str, list[float]]:
    """vLLM's start-up KV figures against the planner's, and the scored ratios."""
    out = [
        "| case | setup | figure | measured | planner | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    ratios = []
    for c in kv_cases():
        predicted = predict_kv(c)
        ratio = predicted / c.measured
        if c.scored:
            ratios.append(ratio)
        label = c.id if c.scored else f"{c.id} (not scored: {c.note})"
        checkpoint = f" ({c.model_note})" if c.model_note else ""
        pool = f", pool {c.pool_gib} GiB" if c.pool_gib else ""
        setup = (
            f"{c.model} {c.weights}{checkpoint}, KV {c.kv_cache_dtype}, {c.tp}x {c.gpu}, "
            f"util {c.gpu_memory_utilization}{pool}, {c.engine}"
        )
        name = KV_NAMES[c.figure]
        digits = 0 if c.figure in ("kv_tokens", "kv_tokens_from_pool") else 2
        out.append(
            f"| [{label}]({c.source}) | {setup} | {name} | {c.measured:,.{digits}f} | "
            f"{predicted:,.{digits}f} | {ratio:.3f} |"
        )
    return "\n".join(out), ratios


def main() -> None:
    everything = evaluate()
    print(table(everything))
    kv, kv_ratios = kv_table()
    print()
    print(kv)
    rows = [r for r in everything if r.case.scored]
    ratios = [r.ratio for r in rows]
    previous = [r.previous_ratio for r in rows]
    worst = max(ratios, key=lambda x: max(x, 1 / x))
    summary = {
        "cases": len(rows),
        "not_scored": len(everything) - len(rows),
        "within_25pct": sum(within(x, 0.25) for x in ratios),
        "within_2x": sum(0.5 <= x <= 2 for x in ratios),
        "share_within_25pct": round(sum(within(x, 0.25) for x in ratios) / len(rows), 3),
        "worst_ratio": round(worst, 3),
        "previous_share_within_25pct": round(sum(within(x, 0.25) for x in previous) / len(rows), 3),
        "previous_within_2x": sum(0.5 <= x <= 2 for x in previous),
        "kv_cases": len(kv_ratios),
        "kv_within_5pct": sum(within(x, 0.05) for x in kv_ratios),
        "kv_worst_ratio": round(max(kv_ratios, key=lambda x: max(x, 1 / x)), 3),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
