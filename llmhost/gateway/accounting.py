"""Token accounting for limits and budgets: what a request reserves before it runs, and what it
is charged when a stream ends without the engine's usage report.

Reservation: the prompt's tokens, counted by the engine's own tokenizer where it has one
(llama-server and vLLM `/tokenize`), else bounded by the prompt's UTF-8 bytes (byte-level and
byte-fallback tokenizers never make more tokens than bytes; `bytes / 4` undercounts digits and
CJK by 3-4x), plus `TEMPLATE_ALLOWANCE` per chat message for the template's special tokens; then
`max_tokens` for every answer generated (`n`, times the prompts of a completions batch).

A stream the client cut (or the engine broke) before the usage chunk is charged what reached the
client: its prompt as reserved, and the completion text relayed, counted by the engine's
tokenizer where it has one, else one token per streamed content event (llama-server and vLLM
stream one token per event), never less than a quarter of the text's bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import orjson

TEMPLATE_ALLOWANCE = 16  # tokens a chat template may add around one message (Gemma: 5, Llama 3: 5)


def prompt_texts(payload: dict[str, Any]) -> tuple[list[str], int, int]:
    """The prompt's texts, its token ids (count) and how many chat messages carry them."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        texts = [text for message in messages for text in _content_texts(message)]
        return texts, 0, len(messages)
    value = payload.get("prompt", payload.get("input"))
    if isinstance(value, str):
        return [value], 0, 0
    texts, ids = [], 0
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, int):
            ids += 1
        elif isinstance(item, list):
            ids += len(item)
    return texts, ids, 0


def _content_texts(message: object) -> Iterable[str]:
    if not isinstance(message, dict):
        return ()
    content = message.get("content")
    if isinstance(content, str):
        return (content,)
    if isinstance(content, list):
        return [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return ()


def byte_bound(texts: list[str], ids: int, messages: int) -> int:
    """An upper bound on the prompt's tokens without a tokenizer."""
    return sum(len(t.encode()) for t in texts) + ids + TEMPLATE_ALLOWANCE * messages


def reservation(prompt_tokens: int, max_tokens: int, choices: int) -> int:
    """Tokens a request reserves: its prompt and the most every answer may generate."""
    return prompt_tokens + max_tokens * choices


def relayed_text(events: Iterable[bytes]) -> tuple[str, int]:
    """The completion text in relayed SSE events, and how many events carried some."""
    parts: list[str] = []
    carrying = 0
    for chunk in events:
        for line in chunk.split(b"\n"):
            line = line.strip()
            if not line.startswith(b"data:") or line.endswith(b"[DONE]"):
                continue
            try:
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            texts = [_choice_text(c) for c in data.get("choices") or [] if isinstance(c, dict)]
            found = "".join(t for t in texts if t)
            if found:
                carrying += 1
                parts.append(found)
    return "".join(parts), carrying


def _choice_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        text = delta.get("content") or delta.get("reasoning_content") or ""
    else:
        text = choice.get("text") or ""
    return text if isinstance(text, str) else ""


def estimate_completion(text: str, events: int) -> int:
    """Completion tokens without a tokenizer: one per content event, at least bytes / 4."""
    return max(events, math.ceil(len(text.encode()) / 4))
