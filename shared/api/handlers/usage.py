"""GET /v1/usage."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.http import ApiRequest, ApiResponse
from shared.api.render import usage_json

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["get_usage", "list_notices", "read_notice"]


def get_usage(req: ApiRequest, c: Container) -> ApiResponse:
    snapshot = c.enforcer.usage(req.user_id, c.now())
    return ApiResponse.json(200, usage_json(snapshot))


def list_notices(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services.notices import notice_json

    with c.db.uow() as uow:
        found = uow.notices.for_owner(req.user_id)
    items = [notice_json(n) for n in found]
    return ApiResponse.json(200, {"items": items, "unread": sum(1 for i in items if not i["read"])})


def read_notice(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.handlers.common import path_uuid
    from shared.errors import NotFound
    from shared.services.notices import notice_json

    with c.db.uow() as uow:
        notice = uow.notices.mark_read(req.user_id, path_uuid(req), c.now())
        uow.commit()
    if notice is None:
        raise NotFound("Notice not found.")
    return ApiResponse.json(200, notice_json(notice))
