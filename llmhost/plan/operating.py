"""The operating point: what a replica does at a given concurrency, and the curve over them.

A closed loop of `concurrency` users (as `llmhost bench` and vLLM's `bench serve
--max-concurrency` drive it), every request `prompt` tokens in and `output` tokens out:

- running = min(concurrency, sequences memory holds, max_num_seqs, and what the token budget
  allows: each step carries the running sequences plus the prompt tokens of the requests that
  replace finishing ones, (running - 1) x prompt / output on average, within
  max_num_batched_tokens). Requests beyond it wait in the queue.
- TPOT = one step (`llmhost.plan.step`) of `running` decoders holding prompt + output / 2
  tokens plus that prefill share.
- TTFT = the engine's per-request cost + queueing (waiting requests / completion rate, Little's
  law) + waiting behind other prompts being prefilled (M/D/1: utilisation u = arrivals x
  prefill time, wait = u x prefill / (2 (1 - u))) + the prompt's chunks, each
  min(prompt, budget - running decoders) tokens riding in a step with the other running
  sequences.
- aggregate output tokens/s = concurrency x output / (TTFT + (output - 1) x TPOT), as a
  benchmark counts it; per-user tokens/s = 1 / TPOT.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llmhost.plan.types import CurvePoint

# Highest prefill utilisation the queueing term is evaluated at (it diverges at 1).
MAX_PREFILL_UTILISATION = 0.95

StepFn = Callable[[float, float, float, float], float]  # (decode, context, prefill, span) -> s


@dataclass(frozen=True)
class Traffic:
    """The request shape the replica serves."""

    prompt: int
    output: int


def running_sequences(concurrency: int, limit: int, budget: int, traffic: Traffic) -> int:
    """Sequences decoding at once: concurrency within memory, max_num_seqs and the token budget."""
    ratio = traffic.prompt / traffic.output
    by_budget = math.floor((budget + ratio) / (1 + ratio))
    return max(1, min(concurrency, limit, by_budget))


def point(
    step: StepFn,
    concurrency: int,
    limit: int,
    budget: int,
    traffic: Traffic,
    request_overhead_s: float,
) -> CurvePoint:
    """Per-user speed, TTFT and aggregate throughput at `concurrency` users."""
    p, o = traffic.prompt, traffic.output
    running = running_sequences(concurrency, limit, budget, traffic)
    context = p + o / 2
    others = running - 1
    tpot = step(running, context, others * p / o, p / 2)
    chunk = max(1, min(p, budget - others))
    prefill_s = math.ceil(p / chunk) * step(others, context, chunk, p / 2)
    lifetime = prefill_s + (o - 1) * tpot
    waiting = concurrency - running
    queue_s = waiting * lifetime / running if waiting > 0 else 0.0
    # Prompts arriving while another is being prefilled wait for it (M/D/1 waiting time,
    # utilisation = arrival rate x prefill time, capped below 1).
    busy = min(MAX_PREFILL_UTILISATION, others / lifetime * prefill_s) if others else 0.0
    collide_s = busy * prefill_s / (2 * (1 - busy))
    ttft = request_overhead_s + queue_s + collide_s + prefill_s
    aggregate = concurrency * o / (ttft + (o - 1) * tpot)
    return CurvePoint(
        concurrency=concurrency,
        running=running,
        per_user_tokens_per_s=round(1 / tpot, 3),
        ttft_s=round(ttft, 4),
        aggregate_tokens_per_s=round(aggregate, 2),
        tpot_s=round(tpot, 6),
    )


def concurrency_levels(limit: int, extra: int | None = None) -> list[int]:
    """1, 2, 4, ... up to `limit`, `limit` itself, and `extra` if asked for."""
    levels, c = [], 1
    while c < limit:
        levels.append(c)
        c *= 2
    levels.append(max(limit, 1))
    if extra is not None:
        levels.append(extra)
    return sorted(set(levels))


def choose(
    curve: list[CurvePoint],
    limit: int,
    ttft_s: float | None,
    min_user_tokens_per_s: float,
    concurrency: int | None,
) -> tuple[CurvePoint, bool]:
    """The operating point and whether it meets the targets.

    With a fixed `concurrency` that point; otherwise the largest concurrency within `limit`
    whose TTFT and per-user speed meet the targets (the first point when none does).
    """

    def meets(pt: CurvePoint) -> bool:
        """Whether a point meets the per-user speed and TTFT targets."""
        fast = pt.per_user_tokens_per_s >= min_user_tokens_per_s
        return fast and (ttft_s is None or pt.ttft_s <= ttft_s)

    if concurrency is not None:
        chosen = next(pt for pt in curve if pt.concurrency == concurrency)
        return chosen, meets(chosen)
    good = [pt for pt in curve if pt.concurrency <= limit and meets(pt)]
    if good:
        return max(good, key=lambda pt: pt.concurrency), True
    return curve[0], False
