"""POST and GET /v1/library/assets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.handlers.common import idempotency_key, stored
from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import AssetQuery, CreateAssetRequest
from shared.services import library as service
from shared.services.render import asset_json

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["AssetQuery", "create_asset", "list_assets"]


def create_asset(req: ApiRequest, c: Container) -> ApiResponse:
    body = req.parse(CreateAssetRequest)
    response, replayed = service.save_asset(
        c.db,
        c.enforcer,
        user_id=req.user_id,
        req=body,
        raw_body=req.json(),
        idem_key=idempotency_key(req),
    )
    return stored(response, replayed)


def list_assets(req: ApiRequest, c: Container) -> ApiResponse:
    query = req.parse_query(AssetQuery)
    page = service.list_assets(
        c.db,
        user_id=req.user_id,
        platform=query.platform,
        status=query.status,
        tags=query.tag_list(),
        q=query.q,
        limit=query.limit,
        cursor=query.cursor,
        cursor_secret=c.settings.effective_cursor_secret,
    )
    payload = {"items": [asset_json(a) for a in page.items], "next_cursor": page.next_cursor}
    return ApiResponse.json(200, payload)
