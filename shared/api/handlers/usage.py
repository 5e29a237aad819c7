"""GET /v1/usage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.http import ApiRequest, ApiResponse
from shared.api.render import usage_json

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["get_usage"]


def get_usage(req: ApiRequest, c: Container) -> ApiResponse:
    snapshot = c.enforcer.usage(req.user_id, c.now())
    return ApiResponse.json(200, usage_json(snapshot))
