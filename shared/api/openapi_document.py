"""The OpenAPI 3.1 document of a route table and its pydantic models (never by hand).

``shared.api.openapi`` builds it from ``shared.api.routes.ROUTES`` (``make openapi``);
the route table serves it (``GET /openapi.json``). This module never imports the table,
which imports it to serve it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.api import models as api_models
from shared.api.models import ErrorResponse

if TYPE_CHECKING:
    from shared.api.routing import Route

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_ERROR_TEXT = {
    "400": "Malformed input (INVALID_JSON, INVALID_CURSOR, INVALID_REQUEST_ID)",
    "401": "UNAUTHENTICATED",
    "402": "SUBSCRIPTION_REQUIRED",
    "403": "FORBIDDEN / PLAN_FEATURE_UNAVAILABLE",
    "404": "NOT_FOUND",
    "409": "IDEMPOTENCY_IN_PROGRESS / GENERATION_IN_PROGRESS / GENERATION_FINISHED",
    "412": "PRECONDITION_FAILED (If-Match)",
    "413": "PAYLOAD_TOO_LARGE",
    "415": "UNSUPPORTED_MEDIA_TYPE",
    "422": "VALIDATION_FAILED / IDEMPOTENCY_KEY_REUSED",
    "429": "A limit was reached (Retry-After; RateLimit-Limit, -Remaining, -Reset)",
    "500": "INTERNAL",
    "503": "SERVICE_UNAVAILABLE / PROVIDER_BUSY (Retry-After)",
    "489": "INVALID_DELIVERY: signed but malformed; Upstash-NonRetryable-Error: true, so "
    "QStash does not retry it",
}
# Every operation can meet a bad X-Request-Id (400), an unknown id (404), a bug (500) and
# an unreachable Redis/Postgres/Stripe (503); the rest depend on what the route takes.
_ALWAYS = ("400", "404", "500", "503")
_BY_OPERATION = {
    "create": ("402", "403", "429"),
    "regenerate": ("402", "403", "409", "429"),
    "patch_draft": ("412",),
    "delete_draft": ("409", "412"),
    "patch_asset": ("412",),
    "delete_asset": ("412",),
    "restore_asset": ("412",),
    "generate": ("489",),
    "failed": ("489",),
    "checkout": ("409",),
}


# Operations whose success answer carries the resource's ETag.
_ETAG_OPERATIONS = frozenset(
    {"get_draft", "patch_draft", "create_asset", "get_asset", "patch_asset", "restore_asset"}
)


def _error_statuses(route: Route) -> list[str]:
    """The documented error statuses of ``route`` (sorted)."""
    statuses = set(_ALWAYS) | set(_BY_OPERATION.get(route.operation, ()))
    if route.auth in ("bearer", "admin"):
        statuses.add("401")
    if route.auth == "admin":
        statuses.add("403")
    if route.method in ("POST", "PATCH", "PUT"):
        statuses |= {"413", "415"}
    if route.request_model is not None or route.query_model is not None or route.idempotent:
        statuses.add("422")
    if route.method == "GET" and route.auth != "none":
        statuses.add("422")  # query strings are validated too (unknown or bad parameters)
    if route.idempotent:
        statuses |= {"409", "422"}
    return sorted(statuses)


def _models(routes: Iterable[Route]) -> list[type[BaseModel]]:
    # Query models are not components: each becomes its route's query parameters.
    found: dict[str, type[BaseModel]] = {"ErrorResponse": ErrorResponse}
    for r in routes:
        for name in (r.request_model, r.response_model):
            if name is not None:
                found[name] = getattr(api_models, name)
    return list(found.values())


def _query_params(route: Route) -> list[dict[str, Any]]:
    """One ``in: query`` parameter per field of the route's query model."""
    if route.query_model is None:
        return []
    query_model: type[BaseModel] = getattr(api_models, route.query_model)
    model = query_model.model_json_schema(ref_template=_REF)
    required = set(model.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in model["properties"].items()
    ]


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` as just ``X``: a query parameter is absent or a string, never null."""
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**rest, **branches[0]}


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation,
        "summary": route.summary,
        "tags": [route.function],
        "responses": {},
    }
    params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in re.findall(r"\{(\w+)\}", route.pattern)
    ]
    params += _query_params(route)
    if route.idempotent:
        params.append(
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}}
        )  # fmt: skip
    if params:
        op["parameters"] = params
    if route.request_model is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[route.request_model]}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if op["operationId"] in _ETAG_OPERATIONS:
        ok["headers"] = {
            "ETag": {"description": "The version (If-Match)", "schema": {"type": "string"}}
        }
    if route.response_model is not None:
        ok["content"] = {"application/json": {"schema": schemas[route.response_model]}}
    op["responses"][str(route.status)] = ok
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}
    for status in _error_statuses(route):
        op["responses"][status] = {"description": _ERROR_TEXT[status], "content": error}
    if route.auth in ("bearer", "admin"):
        op["security"] = [{"bearer": []}]
    else:
        op["security"] = []
    return op


def openapi_document(routes: Iterable[Route]) -> dict[str, Any]:
    """The whole document as a dict (deterministic: sorted keys when dumped)."""
    routes = tuple(routes)
    refs, defs = models_json_schema(
        [
            (m, "validation" if m.__name__.endswith("Request") else "serialization")
            for m in _models(routes)
        ],
        ref_template=_REF,
    )
    schemas = {model.__name__: schema for (model, _), schema in refs.items()}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = _operation(route, schemas)
        paths.setdefault(route.pattern, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Reel Content API",
            "version": "1.0.0",
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        },
        # Relative: the document is served by the API itself (API Gateway in production,
        # make dev locally), so its own origin is the server.
        "servers": [{"url": "/", "description": "The origin serving this document"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
