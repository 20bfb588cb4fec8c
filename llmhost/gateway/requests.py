"""The OpenAI request bodies the gateway accepts, as typed msgspec structures: every request is
checked against them, and they are the request schemas of the gateway's OpenAPI document.

Typed are the fields the gateway reads and those whose wrong type would make an engine fail
(a content part whose `text` is a number, `n` as a string, a nested `stop`); every other field
passes through untouched, since engines have extensions of their own. Nesting deeper than
`MAX_DEPTH` is refused before anything walks the body. msgspec was chosen by measuring:
`benchmarks/validation.py` times it against pydantic on the same bodies.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from llmhost.gateway.errors import Refusal

MAX_DEPTH = 32  # containers inside containers; real requests stay under 10
MAX_CHOICES = 128  # OpenAI's limit for `n`

Positive = Annotated[int, msgspec.Meta(ge=1)]
Choices = Annotated[int, msgspec.Meta(ge=1, le=MAX_CHOICES)]
Temperature = Annotated[float, msgspec.Meta(ge=0, le=2)]
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
Penalty = Annotated[float, msgspec.Meta(ge=-2, le=2)]
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# A prompt or embedding input: text, texts, token ids, or lists of token ids. (msgspec takes one
# array type per union, so the list's items carry the alternatives; `_homogeneous` checks them.)
Inputs = str | list[str | int | list[int]]


class TextPart(msgspec.Struct, tag_field="type", tag="text"):
    """A piece of text in a message."""

    text: str


class ImageUrl(msgspec.Struct):
    """Where an image is (a URL or a data: URL)."""

    url: str
    detail: str | None = None


class ImagePart(msgspec.Struct, tag_field="type", tag="image_url"):
    """An image in a message (for engines that serve vision models)."""

    image_url: ImageUrl


class InputAudio(msgspec.Struct):
    """Base64 audio and its format."""

    data: str
    format: str


class AudioPart(msgspec.Struct, tag_field="type", tag="input_audio"):
    """Audio in a message."""

    input_audio: InputAudio


class FilePart(msgspec.Struct, tag_field="type", tag="file"):
    """A file in a message."""

    file: dict[str, Any]


class RefusalPart(msgspec.Struct, tag_field="type", tag="refusal"):
    """An assistant's refusal, sent back in a conversation."""

    refusal: str


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart


class Message(msgspec.Struct):
    """One chat message."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class StreamOptions(msgspec.Struct):
    """Options of a streamed response."""

    include_usage: bool | None = None


class _Generation(msgspec.Struct, kw_only=True):
    """Fields chat and text completions share."""

    model: ModelName
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Positive | None = None
    n: Choices | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    logit_bias: dict[str, float] | None = None


class ChatRequest(_Generation, kw_only=True):
    """POST /v1/chat/completions."""

    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    max_completion_tokens: Positive | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None


class CompletionRequest(_Generation, kw_only=True):
    """POST /v1/completions."""

    prompt: Inputs
    echo: bool | None = None
    logprobs: Annotated[int, msgspec.Meta(ge=0, le=5)] | None = None
    best_of: Choices | None = None
    suffix: str | None = None


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    """POST /v1/embeddings."""

    model: ModelName
    input: Inputs
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Positive | None = None
    user: str | None = None


SCHEMAS: dict[str, type[msgspec.Struct]] = {
    "/v1/chat/completions": ChatRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
}


class Facts(NamedTuple):
    """What the rest of the request path needs to know about a validated body."""

    stream: bool
    max_tokens: int | None  # the larger of max_tokens and max_completion_tokens, if set
    choices: int  # answers generated: n (or best_of) times the prompts in a completions batch


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether containers nest more than `limit` levels deep (level by level: no recursion)."""
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [c for c in children if type(c) is dict or type(c) is list]
        level = below
        depth += 1
    return False


def validate(payload: dict[str, Any], path: str) -> Facts:
    """Check `payload` against the schema of `path`; a `Refusal` (400) names the field."""
    if too_deep(payload):
        raise Refusal("invalid_value", f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        body = msgspec.convert(payload, SCHEMAS[path])
    except msgspec.ValidationError as exc:
        message, param = _describe(str(exc))
        raise Refusal("invalid_value", message, param) from None
    if isinstance(body, EmbeddingRequest):
        _homogeneous(body.input, "input")
        return Facts(stream=False, max_tokens=None, choices=1)
    if isinstance(body, ChatRequest):
        limit = body.max_tokens
        if body.max_completion_tokens is not None:
            limit = max(limit or 0, body.max_completion_tokens)
        return Facts(body.stream is True, limit, body.n or 1)
    assert isinstance(body, CompletionRequest)
    _homogeneous(body.prompt, "prompt")
    choices = max(body.n or 1, body.best_of or 1) * _prompts(body.prompt)
    return Facts(body.stream is True, body.max_tokens, choices)


def _prompts(prompt: Inputs) -> int:
    """How many prompts a completions request carries (a batch is a list of texts or of token
    lists; a flat list of token ids is one prompt)."""
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return len(prompt)
    return 1


def _homogeneous(value: Inputs, field: str) -> None:
    """A list input must be all texts, all token ids, or all token-id lists."""
    if isinstance(value, list) and len({type(item) for item in value}) > 1:
        raise Refusal(
            "invalid_value",
            f"'{field}' must be a string, a list of strings, a list of token ids or a list of "
            "token-id lists, not a mix",
            field,
        )


def _describe(error: str) -> tuple[str, str | None]:
    """msgspec's error text as (message, param): 'Expected `int`, got `str` - at `$.n`'."""
    text, _, where = error.partition(" - at `$")
    param = where.rstrip("`").lstrip(".") or None
    if param is None and "missing required field `" in text:
        param = text.split("`")[1]
    message = f"invalid '{param}': {text}" if param else text
    return message, param
