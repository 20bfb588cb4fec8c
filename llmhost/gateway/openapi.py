"""The gateway's OpenAPI 3.1 document, served at /openapi.json, made from the same types that
validate requests (`requests.py`) and admin bodies (`keys.KeySpec`), so it cannot drift."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from llmhost import __version__
from llmhost.gateway.keys import KeySpec
from llmhost.gateway.requests import SCHEMAS

REF = "#/components/schemas/{name}"
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    ref = {"$ref": REF.format(name="Error")}
    return {
        str(s): {"description": "an error, in the OpenAI shape", "content": _json(ref)}
        for s in statuses
    }


def _operation(summary: str, ok: dict[str, Any], *errors: int, body: Any = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "success", "content": ok}, **_errors(*errors)},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once)."""
    names = {path: schema.__name__ for path, schema in SCHEMAS.items()}
    _, components = msgspec.json.schema_components(list(SCHEMAS.values()), ref_template=REF)
    components["Error"] = ERROR
    components["KeySpec"] = KeySpec.model_json_schema(ref_template="#/components/schemas/{model}")
    generation_errors = (400, 401, 403, 404, 408, 413, 429, 502, 503, 504)
    stream = {**_json(ANY_OBJECT), "text/event-stream": {"schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        path: {
            "post": _operation(
                f"OpenAI-compatible {path.removeprefix('/v1/')}",
                stream,
                *generation_errors,
                body={"$ref": REF.format(name=name)},
            )
        }
        for path, name in names.items()
    }
    paths["/v1/models"] = {"get": _operation("Models this caller may use", _json(ANY_OBJECT), 401)}
    paths["/health"] = {"get": _operation("The gateway process is alive", _json(ANY_OBJECT))}
    paths["/ready"] = {"get": _operation("Every model can serve", _json(ANY_OBJECT), 503)}
    text = {"text/plain": {"schema": {"type": "string"}}}
    paths["/metrics"] = {"get": _operation("Prometheus metrics", text, 401)}
    paths["/admin/keys"] = {
        "get": _operation("List keys", _json(ANY_OBJECT), 400, 401, 403, 503),
        "post": _operation(
            "Create a key",
            _json(ANY_OBJECT),
            400,
            401,
            403,
            503,
            body={"$ref": REF.format(name="KeySpec")},
        ),
    }
    prefix = [{"name": "prefix", "in": "path", "required": True, "schema": {"type": "string"}}]
    paths["/admin/keys/{prefix}"] = {
        "parameters": prefix,
        "get": _operation("Show a key", _json(ANY_OBJECT), 401, 403, 404, 503),
        "delete": _operation("Revoke a key", _json(ANY_OBJECT), 401, 403, 404, 503),
    }
    paths["/admin/usage"] = {"get": _operation("Usage", _json(ANY_OBJECT), 400, 401, 403, 503)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmhost gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
