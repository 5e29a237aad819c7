"""The one wrapper around every Cloud Function (STYLE rule 2).

``dispatch(function_name, flask_request)`` does, in order: request id, CORS (and
preflight), route match (404/405), body limits and media type (413/415), bearer auth
for routes that need it, the handler, error rendering in the SPEC shape, security
headers, ``Retry-After`` on 429/503, and one canonical log line at start and end.
Handlers receive a framework-free ``ApiRequest`` and return an ``ApiResponse``; no
handler ever sees Flask, and no exception text or stack trace reaches a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Final, cast

from shared.api.messages import ApiRequest, ApiResponse, dump_json, validation_error
from shared.errors import (
    AppError,
    BadRequest,
    Forbidden,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UndeliverableJob,
    UnsupportedMediaType,
)
from shared.observability.logging import (
    annotate,
    bind,
    log_event,
    new_request_id,
    resolve_request_id,
)

if TYPE_CHECKING:
    import flask

    from shared.api.auth import Principal
    from shared.api.routing import Route
    from shared.bootstrap import Container

__all__ = [
    "MAX_BODY_BYTES",
    "ApiRequest",
    "ApiResponse",
    "dispatch",
    "dump_json",
    "validation_error",
]

MAX_BODY_BYTES: Final = 64 * 1024
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
}
CORS_ALLOW_HEADERS: Final = "Authorization, Content-Type, Idempotency-Key, If-Match, X-Request-Id"
CORS_EXPOSE_HEADERS: Final = (
    "ETag, Location, Retry-After, X-Request-Id, Idempotent-Replayed, "
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
_BODY_METHODS: Final = frozenset({"POST", "PATCH", "PUT"})
_log = logging.getLogger("reel.api")


def _match(routes: list[Route], path: str, method: str) -> tuple[Route, dict[str, str]]:
    allowed: list[str] = []
    for route in routes:
        m = route.regex.match(path)
        if m is None:
            continue
        if route.method == method:
            return route, m.groupdict()
        allowed.append(route.method)
    if allowed:
        raise MethodNotAllowed(details={"allowed": sorted(set(allowed))})
    raise NotFound("No such route.")


def _read_body(req: flask.Request) -> bytes:
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(details={"max_bytes": MAX_BODY_BYTES})
    body: bytes = req.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(details={"max_bytes": MAX_BODY_BYTES})
    return body


def _check_media_type(req: flask.Request, body: bytes, route: Route) -> None:
    if req.method not in _BODY_METHODS:
        return
    if not body and route.request_model is None:
        return  # a bodiless POST (e.g. the billing portal) needs no Content-Type
    if req.mimetype != "application/json":
        raise UnsupportedMediaType()
    charset = req.mimetype_params.get("charset")
    if charset and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("Only UTF-8 JSON is accepted.")
    if not body:
        raise BadRequest("Request body is empty.", code="INVALID_JSON")


def _cors_headers(origin: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    if not origin:
        return {}
    wanted = origin.rstrip("/")
    configured = next((o for o in allowed if o == wanted), None)
    if configured is None:
        return {}
    # The configured string, never the caller's: a browser compares it byte for byte,
    # and reflecting request text into a header is how header injection starts.
    return {
        "Access-Control-Allow-Origin": configured,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
        "Vary": "Origin",
    }


def _preflight(cors: dict[str, str], req: flask.Request) -> ApiResponse:
    headers = dict(cors)
    if cors:
        headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
        headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = "600"
    return ApiResponse(204, b"", headers)


def _error_response(exc: AppError, request_id: str) -> ApiResponse:
    headers: dict[str, str] = {}
    if exc.status in (429, 503) or exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(exc.retry_after or 1)))
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.details.get("allowed", []))
    if isinstance(exc, UndeliverableJob):
        headers["Upstash-NonRetryable-Error"] = "true"
    if exc.status == 429:
        headers.update(_ratelimit_fields(exc))
    return ApiResponse.json(exc.status, exc.body(request_id), headers)


def _ratelimit_fields(exc: AppError) -> dict[str, str]:
    """IETF RateLimit fields of a 429, as on a 202: the limit hit, what is left of it (0)
    and the seconds until it resets (Retry-After)."""
    fields = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(max(1, int(exc.retry_after or 1)))}
    limit = exc.details.get("limit")
    if isinstance(limit, int):
        fields["RateLimit-Limit"] = str(limit)
    return fields


def _authenticate(route: Route, req: flask.Request, container: Container) -> Principal | None:
    if route.auth not in ("bearer", "admin"):
        return None
    header = req.headers.get(container.settings.auth_header)
    if header is None and route.query_token and req.args.get("access_token"):
        header = f"Bearer {req.args['access_token']}"
    from shared.api.auth import authenticator_of  # bearer functions only (cold starts)

    principal = authenticator_of(container).authenticate(header)
    if route.auth == "admin" and not principal.is_admin:
        raise Forbidden("This route requires the admin role.")
    return principal


def _handle(
    route: Route,
    params: dict[str, str],
    req: flask.Request,
    container: Container,
    request_id: str,
) -> ApiResponse:
    body = _read_body(req)
    _check_media_type(req, body, route)
    principal = _authenticate(route, req, container)
    api_req = ApiRequest(
        method=req.method,
        path=req.path,
        headers=cast(Mapping[str, str], req.headers),
        query=dict(req.args.items()),
        body=body,
        request_id=request_id,
        path_params=params,
        principal=principal,
        url=req.url,
    )
    annotate(user_id=principal.user_id if principal else None)
    # A JSON body a route ignores must still be JSON (SPEC §3: 400 INVALID_JSON).
    ignored_body = body and route.request_model is None and req.method in _BODY_METHODS
    if ignored_body and route.auth in ("bearer", "admin"):
        api_req.json()
    return route.handler(api_req, container)


def dispatch(
    function: str, req: flask.Request, container: Container | None = None
) -> flask.Response:
    """Serve one request for the Cloud Function called ``function``."""
    import flask

    from shared.bootstrap import get_container

    started = time.perf_counter()
    route: Route | None = None
    code: str | None = None
    cors: dict[str, str] = {}
    try:
        request_id = resolve_request_id(req.headers.get("X-Request-Id"))
        bad_id: AppError | None = None
    except AppError as exc:
        request_id, bad_id = new_request_id(), exc
    with bind(request_id=request_id):
        log_event(_log, "request_started", method=req.method, path=req.path)
        # Everything that can raise runs inside this try, the container included: a
        # broken configuration met here still answers JSON with the request id.
        try:
            c = container or get_container()
            cors = _cors_headers(req.headers.get("Origin"), c.settings.cors_allowed_origins)
            if bad_id is not None:
                raise bad_id
            if req.method == "OPTIONS":
                resp = _preflight(cors, req)
            else:
                from shared.api.routes import routes_for

                route, params = _match(routes_for(function), req.path, req.method)
                # ``route`` is set from here on, so error lines carry it too.
                resp = _handle(route, params, req, c, request_id)
        except InternalError as exc:
            # Its message may carry driver text (Redis/Postgres errors): log it, never send it.
            _log.error(
                "internal_error: %s",
                exc.message,
                exc_info=True,
                extra={"fields": {"event": "internal_error"}},
            )
            code = "INTERNAL"
            resp = _error_response(InternalError(), request_id)
        except AppError as exc:
            code = exc.code
            resp = _error_response(exc, request_id)
        except Exception:
            _log.exception("unhandled_error", extra={"fields": {"event": "unhandled_error"}})
            code = "INTERNAL"
            resp = _error_response(InternalError(), request_id)
        headers = {**SECURITY_HEADERS, **cors, **resp.headers, "X-Request-Id": request_id}
        log_event(
            _log,
            "request_finished",
            level=logging.WARNING if resp.status >= 500 else logging.INFO,
            method=req.method,
            route=route.pattern if route else None,
            status=resp.status,
            code=code,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        if (code and resp.status == 429) or code == "PROVIDER_BUSY":
            log_event(_log, "limit_rejected", level=logging.INFO, code=code, status=resp.status)
        if resp.stream is not None:
            stream = _logged(resp.stream, request_id)
            return flask.Response(stream, status=resp.status, headers=headers)
        return flask.Response(resp.body, status=resp.status, headers=headers)


def _logged(stream: Iterable[bytes], request_id: str) -> Iterator[bytes]:
    """``stream``, with a failure after the status was sent logged (it cannot be answered)."""
    with bind(request_id=request_id):
        try:
            yield from stream
        except Exception:
            _log.exception("stream_failed", extra={"fields": {"event": "stream_failed"}})
            raise
