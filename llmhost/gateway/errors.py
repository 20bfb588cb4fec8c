"""JSON responses, errors in the OpenAI shape so every OpenAI client can read them, and the one
exception every step of the request path raises to refuse a request."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

# (HTTP status, OpenAI error type) for each code llmhost returns.
KINDS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "invalid_request_error"),
    "invalid_value": (400, "invalid_request_error"),
    "invalid_api_key": (401, "invalid_request_error"),
    "model_not_allowed": (403, "permission_error"),
    "admin_only": (403, "permission_error"),
    "model_not_found": (404, "invalid_request_error"),
    "not_found": (404, "invalid_request_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "request_too_large": (413, "invalid_request_error"),
    "request_timeout": (408, "invalid_request_error"),
    "rate_limit_exceeded": (429, "rate_limit_error"),
    "insufficient_quota": (429, "insufficient_quota"),
    "internal_error": (500, "server_error"),
    "upstream_error": (502, "server_error"),
    "no_backend": (503, "service_unavailable"),
    "store_unavailable": (503, "service_unavailable"),
    "upstream_timeout": (504, "timeout"),
}


class StoreUnavailable(Exception):
    """A store the request needs (the database, Redis) cannot be reached right now."""


class Refusal(Exception):
    """A request the gateway will not (or cannot) serve: raised by any step of the request
    path, rendered in the OpenAI shape and audited in one place."""

    def __init__(
        self,
        code: str,
        message: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.headers = dict(headers) if headers else None

    @property
    def status(self) -> int:
        """The HTTP status that belongs to this refusal's code."""
        return KINDS[self.code][0]

    def response(self) -> web.Response:
        """The refusal as a JSON error response."""
        return error_response(self.code, self.message, self.param, self.headers)


def json_response(
    value: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`value` as a JSON response."""
    return web.Response(
        status=status, body=orjson.dumps(value), content_type="application/json", headers=headers
    )


def error_body(code: str, message: str, param: str | None = None) -> bytes:
    """`{"error": {...}}` JSON for `code`, as OpenAI's API writes it."""
    kind = KINDS[code][1]
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def error_response(
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON error response with the status that belongs to `code`."""
    return web.Response(
        status=KINDS[code][0],
        body=error_body(code, message, param),
        content_type="application/json",
        headers=headers,
    )


def sse_error(code: str, message: str) -> bytes:
    """An SSE event carrying an error, for failures after a stream has started."""
    return b"data: " + error_body(code, message) + b"\n\n"
