"""/v1/library/assets: save, search, read, edit (ETag / If-Match), delete, restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.handlers.common import expected_version, idempotency_key, path_uuid, stored
from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import AssetPatchRequest, AssetQuery, CreateAssetRequest
from shared.db import Asset
from shared.services import library as service
from shared.services.render import asset_json

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = [
    "AssetQuery",
    "create_asset",
    "delete_asset",
    "get_asset",
    "list_assets",
    "patch_asset",
    "restore_asset",
]


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
        deleted=query.deleted,
        now=c.now(),
    )
    payload = {"items": [asset_json(a) for a in page.items], "next_cursor": page.next_cursor}
    return ApiResponse.json(200, payload)


def _one(asset: Asset) -> ApiResponse:
    return ApiResponse.json(200, asset_json(asset), {"ETag": asset.etag})


def get_asset(req: ApiRequest, c: Container) -> ApiResponse:
    return _one(service.get_asset(c.db, user_id=req.user_id, asset_id=path_uuid(req)))


def patch_asset(req: ApiRequest, c: Container) -> ApiResponse:
    asset_id = path_uuid(req)
    body = req.parse(AssetPatchRequest)
    asset = service.update_asset(
        c.db,
        user_id=req.user_id,
        asset_id=asset_id,
        req=body,
        expected_version=expected_version(req, "asset"),
    )
    return _one(asset)


def delete_asset(req: ApiRequest, c: Container) -> ApiResponse:
    service.delete_asset(c.db, user_id=req.user_id, asset_id=path_uuid(req), now=c.now())
    return ApiResponse(204)


def restore_asset(req: ApiRequest, c: Container) -> ApiResponse:
    asset_id = path_uuid(req)
    return _one(service.restore_asset(c.db, user_id=req.user_id, asset_id=asset_id, now=c.now()))
