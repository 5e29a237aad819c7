"""GET /healthz, GET /readyz (GET /openapi.json: ``shared.api.routes.openapi``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.messages import ApiRequest, ApiResponse
from shared.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["healthz", "readyz"]


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
