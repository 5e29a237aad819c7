"""GET /healthz, GET /readyz, GET /openapi.json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.http import ApiRequest, ApiResponse
from shared.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["healthz", "openapi", "readyz"]


def healthz(req: ApiRequest, c: Container) -> ApiResponse:
    return ApiResponse.json(200, {"status": "ok"})


def readyz(req: ApiRequest, c: Container) -> ApiResponse:
    checks: dict[str, str] = {}
    for name, probe in (("postgres", c.db.ping), ("redis", c.redis.ping)):
        try:
            probe()
            checks[name] = "ok"
        except ServiceUnavailable:
            checks[name] = "unavailable"
    if any(v != "ok" for v in checks.values()):
        raise ServiceUnavailable("Not ready.", details={"checks": checks})
    return ApiResponse.json(200, {"status": "ready", "checks": checks})


def openapi(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.openapi import build_openapi

    return ApiResponse.json(200, build_openapi())
