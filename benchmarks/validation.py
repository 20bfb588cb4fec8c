"""Request validation on the hot path: the gateway's msgspec chat schema
(`llmhost.gateway.requests.ChatRequest`) against the same schema in pydantic (strict), on the
same bodies, side by side in one run; and the whole validation step as the gateway runs it
(depth check, schema, the facts it derives).

Why this matters: the gateway adds well under a millisecond per request, so a validator that
costs tens of microseconds is a visible share of it. Bodies: the overhead benchmark's small
chat request, a 20-turn conversation with content parts, and a 256 KB prompt.
Last line: JSON with microseconds per body for each and pydantic / msgspec.
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from llmhost.gateway import requests  # noqa: E402


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = None


class ChatRequest(_Strict):
    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None


PATH = "/v1/chat/completions"


def bodies() -> dict[str, dict[str, Any]]:
    small = {
        "model": "m",
        "messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 16,
    }
    turns = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [{"type": "text", "text": f"turn {i} " * 20}],
        }
        for i in range(20)
    ]
    conversation = {"model": "m", "messages": turns, "temperature": 0.7, "max_tokens": 256}
    large = {"model": "m", "messages": [{"role": "user", "content": "x" * 256_000}]}
    return {"small": small, "conversation": conversation, "256k": large}


def per_call_us(call: Any, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    results: dict[str, Any] = {}
    for name, body in bodies().items():
        payload = orjson.loads(orjson.dumps(body))
        number = 20_000 if name != "256k" else 2_000
        msgspec_us = per_call_us(lambda p=payload: msgspec.convert(p, requests.ChatRequest), number)
        pydantic_us = per_call_us(lambda p=payload: ChatRequest.model_validate(p), number)
        step_us = per_call_us(lambda p=payload: requests.validate(p, PATH), number)
        results[name] = {
            "msgspec_us": round(msgspec_us, 2),
            "pydantic_us": round(pydantic_us, 2),
            "pydantic_over_msgspec": round(pydantic_us / msgspec_us, 2),
            "gateway_step_us": round(step_us, 2),
        }
        print(
            f"{name:13} msgspec {msgspec_us:8.2f} us   pydantic {pydantic_us:8.2f} us"
            f"   gateway step {step_us:8.2f} us",
            file=sys.stderr,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
