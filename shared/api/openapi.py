"""OpenAPI 3.1 generated from the route table and the pydantic models (never by hand).

``python -m shared.api.openapi`` prints it; ``make openapi`` writes ``openapi.json``;
a test fails when the committed file is stale.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api.models import ErrorResponse
from shared.api.routes import ROUTES

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Malformed input (INVALID_JSON, INVALID_CURSOR, INVALID_REQUEST_ID)",
    "401": "UNAUTHENTICATED",
    "404": "NOT_FOUND",
    "422": "VALIDATION_FAILED / IDEMPOTENCY_KEY_REUSED",
    "429": "A limit was reached (Retry-After)",
    "503": "SERVICE_UNAVAILABLE / PROVIDER_BUSY (Retry-After)",
}


def _models() -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"ErrorResponse": ErrorResponse}
    for r in ROUTES:
        for m in (r.request_model, r.response_model, r.query_model):
            if m is not None:
                found[m.__name__] = m
    return list(found.values())


def _operation(route: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.rsplit(":", 1)[1],
        "summary": route.summary,
        "tags": [route.function],
        "responses": {},
    }
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in re.findall(r"\{(\w+)\}", route.pattern)
    ]
    if route.idempotent:
        params.append(
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
        )  # fmt: skip
    if params:
        op["parameters"] = params
    if route.request_model is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[route.request_model.__name__]}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.response_model is not None:
        ok["content"] = {"application/json": {"schema": schemas[route.response_model.__name__]}}
    op["responses"][str(route.status)] = ok
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}
    for status, text in _ERRORS.items():
        op["responses"][status] = {"description": text, "content": error}
    if route.auth in ("bearer", "admin"):
        op["security"] = [{"bearer": []}]
    else:
        op["security"] = []
    return op


def build_openapi() -> dict[str, Any]:
    """The whole document as a dict (deterministic: sorted keys when dumped)."""
    refs, defs = models_json_schema(
        [
            (m, "validation" if m.__name__.endswith("Request") else "serialization")
            for m in _models()
        ],
        ref_template=_REF,
    )
    schemas = {model.__name__: schema for (model, _), schema in refs.items()}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.pattern, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Reel Content API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def render() -> str:
    return json.dumps(build_openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
