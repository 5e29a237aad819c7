"""/v1/library/assets: save, search, read, edit (ETag / If-Match), delete, restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.handlers.common import expected_version, idempotency_key, path_uuid, stored
from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.api.models import AssetPatchRequest
    from shared.bootstrap import Container
    from shared.enforcement import StoredResponse
    from shared.services import library as service
    from shared.services.library import Asset

__all__ = [
    "asset_changes",
    "create_asset",
    "created_response",
    "delete_asset",
    "get_asset",
    "list_assets",
    "patch_asset",
    "restore_asset",
    "save_command",
]


def created_response(asset: Asset) -> StoredResponse:
    """The 201 for a saved asset: what the service stores for idempotent replays."""
    from shared.api.render import asset_json, dump
    from shared.enforcement import StoredResponse

    headers = {"Content-Type": "application/json", "ETag": asset.etag}
    return StoredResponse(201, dump(asset_json(asset)), headers)


def save_command(req: ApiRequest) -> service.SaveAsset:
    from shared.api.models import CreateAssetRequest
    from shared.services import library as service

    body = req.parse(CreateAssetRequest)
    raw = None
    if body.raw is not None and body.platform is not None and body.title is not None:
        content = service.VariantContent(
            body.raw.hook, body.raw.script, body.raw.caption, tuple(body.raw.hashtags)
        )
        raw = service.RawContent(content, body.platform, body.title)
    return service.SaveAsset(
        user_id=req.user_id,
        raw=raw,
        draft_id=body.draft_id,
        variant_id=body.variant_id,
        title=body.title,
        tags=body.tags,
        status=body.status,
        body=req.json(),
        idem_key=idempotency_key(req),
    )


def asset_changes(body: AssetPatchRequest) -> dict[str, object]:
    """The PATCH body as column changes (content fields flatten into their columns)."""
    from shared.api.models import AssetStatus

    changes: dict[str, object] = {}
    for name in body.model_fields_set - {"content"}:
        value = getattr(body, name)
        changes[name] = value.value if isinstance(value, AssetStatus) else value
    if body.content is not None:
        for name in body.content.model_fields_set:
            changes[name] = getattr(body.content, name)
    return changes


def create_asset(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import library as service

    return stored(*service.save_asset(c.db, c.enforcer, save_command(req), created_response))


def list_assets(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AssetQuery
    from shared.api.render import asset_json
    from shared.services import library as service

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
    from shared.api.render import asset_json

    return ApiResponse.json(200, asset_json(asset), {"ETag": asset.etag})


def get_asset(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import library as service

    return _one(service.get_asset(c.db, user_id=req.user_id, asset_id=path_uuid(req)))


def patch_asset(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AssetPatchRequest
    from shared.services import library as service

    asset_id = path_uuid(req)
    body = req.parse(AssetPatchRequest)
    asset = service.update_asset(
        c.db,
        user_id=req.user_id,
        asset_id=asset_id,
        changes=asset_changes(body),
        expected_version=expected_version(req, "asset"),
    )
    return _one(asset)


def delete_asset(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import library as service

    service.delete_asset(
        c.db, user_id=req.user_id, asset_id=path_uuid(req), now=c.now(),
        expected_version=expected_version(req, "asset"),
    )  # fmt: skip
    return ApiResponse(204)


def restore_asset(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import library as service

    asset = service.restore_asset(
        c.db, user_id=req.user_id, asset_id=path_uuid(req), now=c.now(),
        expected_version=expected_version(req, "asset"),
    )  # fmt: skip
    return _one(asset)
