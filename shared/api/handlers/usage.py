"""GET /v1/usage, GET /v1/notices, POST /v1/notices/{id}/read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.handlers.common import path_uuid
from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["get_usage", "list_notices", "read_notice"]


def get_usage(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.render import usage_json

    snapshot = c.enforcer.usage(req.user_id, c.now())
    return ApiResponse.json(200, usage_json(snapshot))


def list_notices(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import views
    from shared.services.notices import notice_json

    items = [notice_json(n) for n in views.user_notices(c.db, req.user_id)]
    return ApiResponse.json(200, {"items": items, "unread": sum(1 for i in items if not i["read"])})


def read_notice(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import notices

    notice = notices.mark_read(c.db, req.user_id, path_uuid(req), c.now())
    return ApiResponse.json(200, notices.notice_json(notice))
