"""What a load test sends: prompts of set or drawn lengths, shared prefixes, or a file.

Prompts are made of common English words, about one token each for most tokenizers; the real
counts come back in each answer's usage, and the report uses those, never the estimate. Output
length is forced with `ignore_eos` (vLLM, llama.cpp) plus `max_tokens`, so every request
generates what the workload asks unless the engine ignores the flag (the report says so).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmhost.errors import UsageError

WORDS = (
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
)


@dataclass(frozen=True)
class Request:
    """One request to send: chat messages (or a prompt) and how many tokens to generate."""

    messages: list[dict[str, str]]
    max_tokens: int
    prompt_words: int = 0  # the estimate the prompt was made to (0 for files)
    extra: dict[str, Any] = field(default_factory=dict)


def words(n: int, rng: random.Random) -> str:
    """`n` random common words: a prompt of about `n` tokens."""
    return " ".join(rng.choice(WORDS) for _ in range(max(1, n)))


@dataclass(frozen=True)
class Workload:
    """A seeded source of requests; `kind` says which shape (fixed, distribution, prefix,
    file)."""

    kind: str
    prompt_tokens: int = 256
    output_tokens: int = 64
    prompt_spread: float = 0.0  # standard deviation, as a share of the mean (distribution)
    output_spread: float = 0.0
    prefixes: int = 4  # shared-prefix: K distinct system prompts
    prefix_tokens: int = 512  # of L tokens each
    file: Path | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "distribution", "prefix", "file"):
            raise UsageError(
                f"unknown workload '{self.kind}'; use fixed, distribution, prefix or file"
            )
        if self.kind == "file" and self.file is None:
            raise UsageError("the file workload needs --prompts-file FILE.jsonl")
        for name in ("prompt_tokens", "output_tokens", "prefixes", "prefix_tokens"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if self.prompt_spread < 0 or self.output_spread < 0:
            raise UsageError("spreads must not be negative")

    def describe(self) -> str:
        """The workload in a phrase, for reports."""
        if self.kind == "file":
            return f"prompts from {self.file}"
        if self.kind == "prefix":
            shared = f"{self.prefixes} shared system prompts of ~{self.prefix_tokens} tokens"
            return f"{shared}, ~{self.prompt_tokens}-token questions, {self.output_tokens} out"
        if self.kind == "distribution":
            prompts = f"prompts ~{self.prompt_tokens} tokens (sd {self.prompt_spread:.0%})"
            return f"{prompts}, outputs {self.output_tokens} (sd {self.output_spread:.0%})"
        return f"~{self.prompt_tokens}-token prompts, {self.output_tokens} output tokens"

    def requests(self, count: int) -> list[Request]:
        """The first `count` requests of this workload (the same for the same seed)."""
        rng = random.Random(self.seed)
        if self.kind == "file":
            return _from_file(self.file, count, self.output_tokens)  # type: ignore[arg-type]
        if self.kind == "prefix":
            systems = [words(self.prefix_tokens, rng) for _ in range(self.prefixes)]
            return [
                Request(
                    [
                        {"role": "system", "content": rng.choice(systems)},
                        {"role": "user", "content": words(self.prompt_tokens, rng)},
                    ],
                    self.output_tokens,
                    self.prefix_tokens + self.prompt_tokens,
                )
                for _ in range(count)
            ]
        out = []
        for _ in range(count):
            prompt = self._draw(rng, self.prompt_tokens, self.prompt_spread)
            output = self._draw(rng, self.output_tokens, self.output_spread)
            out.append(Request([{"role": "user", "content": words(prompt, rng)}], output, prompt))
        return out

    def _draw(self, rng: random.Random, mean: int, spread: float) -> int:
        if self.kind == "fixed" or spread == 0:
            return mean
        return max(1, round(rng.gauss(mean, mean * spread)))


def _from_file(path: Path, count: int, default_output: int) -> list[Request]:
    """Requests from JSON lines: {"prompt": ...} or {"messages": [...]}, optional max_tokens,
    other fields sent as they are (engine options); cycled when the file has fewer lines than
    requests."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not ("prompt" in row or "messages" in row):
            raise UsageError(f"{path}:{number}: expected an object with 'prompt' or 'messages'")
        messages = row.get("messages") or [{"role": "user", "content": str(row["prompt"])}]
        extra = {k: v for k, v in row.items() if k not in ("prompt", "messages", "max_tokens")}
        rows.append(Request(messages, int(row.get("max_tokens", default_output)), extra=extra))
    if not rows:
        raise UsageError(f"{path}: no prompts")
    return [rows[i % len(rows)] for i in range(count)]
