"""The library: save (idempotent), search, read, edit (If-Match), delete and restore.

Deleting is soft: the asset leaves every read at once and can be restored for
``RESTORE_WINDOW``; the scheduled sweep purges it after that (``lifecycle``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from shared.api.models import AssetPatchRequest, CreateAssetRequest
from shared.db import (
    Asset,
    AssetPage,
    AssetStatus,
    Database,
    IdempotencyConflict,
    Platform,
    VariantContent,
)
from shared.enforcement import Enforcer, StoredResponse, enforce_idempotency
from shared.errors import IdempotencyKeyReused, NotFound
from shared.services.generation import fingerprint
from shared.services.render import asset_json, dump

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "RESTORE_WINDOW",
    "delete_asset",
    "get_asset",
    "list_assets",
    "restore_asset",
    "save_asset",
    "update_asset",
]

IDEMPOTENCY_SCOPE = "library_assets"
RESTORE_WINDOW: Final = timedelta(days=30)
"""SPEC §9: a deleted asset can be restored for 30 days, then the sweep purges it."""


def _store(db: Database, user_id: str, req: CreateAssetRequest, idem_key: str | None) -> Asset:
    with db.uow() as uow:
        uow.users.touch(user_id)
        if req.raw is not None and req.platform is not None and req.title is not None:
            content = VariantContent(
                req.raw.hook, req.raw.script, req.raw.caption, tuple(req.raw.hashtags)
            )
            platform, title, draft_id, variant_id = req.platform, req.title, None, None
        else:
            draft_id, variant_id = uuid.UUID(str(req.draft_id)), uuid.UUID(str(req.variant_id))
            draft = uow.drafts.get(user_id, draft_id)
            variant = uow.variants.get_for_draft(draft_id, variant_id) if draft else None
            if draft is None or variant is None:
                raise NotFound("Draft or variant not found.")
            content, platform = variant.content, draft.platform
            title = req.title or draft.title or variant.content.hook[:200] or "Untitled"
        asset = uow.assets.create(
            user_id,
            title=title,
            platform=Platform(platform),
            tags=req.tags,
            status=AssetStatus(req.status),
            content=content,
            source_draft_id=draft_id,
            source_variant_id=variant_id,
            idempotency_key=idem_key,
        )
        uow.commit()
        return asset


def _from_db(db: Database, user_id: str, idem_key: str) -> StoredResponse:
    with db.uow() as uow:
        existing = uow.assets.find_by_idempotency(user_id, idem_key)
    if existing is None:
        raise IdempotencyKeyReused()
    return _created(existing)


def _created(asset: Asset) -> StoredResponse:
    return StoredResponse(201, dump(asset_json(asset)), {"Content-Type": "application/json"})


def save_asset(
    db: Database,
    enforcer: Enforcer,
    *,
    user_id: str,
    req: CreateAssetRequest,
    raw_body: Mapping[str, Any],
    idem_key: str | None,
) -> tuple[StoredResponse, bool]:
    """Save a variant or raw content. Returns (201 response, replayed)."""
    if idem_key is None:
        return _created(_store(db, user_id, req, None)), False
    fp = fingerprint(IDEMPOTENCY_SCOPE, raw_body)
    replay = enforce_idempotency(
        enforcer.get_or_set_idempotency(user_id, IDEMPOTENCY_SCOPE, idem_key, fp)
    )
    if replay is not None:
        return replay, True
    done = False
    try:
        try:
            response = _created(_store(db, user_id, req, idem_key))
            replayed = False
        except IdempotencyConflict:
            # The Redis record expired but Postgres has the first save: replay it.
            response, replayed = _from_db(db, user_id, idem_key), True
        enforcer.complete_idempotent(user_id, IDEMPOTENCY_SCOPE, idem_key, fp, response)
        done = True
        return response, replayed
    finally:
        if not done:
            enforcer.drop_idempotent(user_id, IDEMPOTENCY_SCOPE, idem_key, fp)


def list_assets(
    db: Database,
    *,
    user_id: str,
    platform: Platform | None,
    status: AssetStatus | None,
    tags: tuple[str, ...],
    q: str | None,
    limit: int,
    cursor: str | None,
    cursor_secret: str,
    deleted: bool = False,
    now: datetime | None = None,
) -> AssetPage:
    """One page of the caller's library, newest first; with ``deleted``, the deleted
    assets still restorable at ``now`` instead."""
    if deleted and now is None:
        raise ValueError("listing deleted assets needs now")
    # One statement: no BEGIN/ROLLBACK round trips.
    with db.autocommit() as uow:
        return uow.assets.list(
            user_id,
            platform=platform,
            status=status,
            tags=tags,
            q=q,
            limit=limit,
            cursor=cursor,
            cursor_secret=cursor_secret,
            deleted_after=now - RESTORE_WINDOW if deleted and now is not None else None,
        )


def get_asset(db: Database, *, user_id: str, asset_id: uuid.UUID) -> Asset:
    """The caller's live asset; ``NotFound`` otherwise."""
    with db.uow() as uow:
        asset = uow.assets.get(user_id, asset_id)
    if asset is None:
        raise NotFound("Asset not found.")
    return asset


def _changes(req: AssetPatchRequest) -> dict[str, object]:
    """The PATCH body as column changes (content fields flatten into their columns)."""
    changes: dict[str, object] = {}
    for name in req.model_fields_set - {"content"}:
        value = getattr(req, name)
        changes[name] = value.value if isinstance(value, AssetStatus) else value
    if req.content is not None:
        for name in req.content.model_fields_set:
            changes[name] = getattr(req.content, name)
    return changes


def update_asset(
    db: Database,
    *,
    user_id: str,
    asset_id: uuid.UUID,
    req: AssetPatchRequest,
    expected_version: int | None,
) -> Asset:
    """Apply a PATCH; ``PreconditionFailed`` (412) when ``expected_version`` is stale."""
    with db.uow() as uow:
        asset = uow.assets.update(user_id, asset_id, _changes(req), expected_version)
        uow.commit()
    return asset


def delete_asset(db: Database, *, user_id: str, asset_id: uuid.UUID, now: datetime) -> None:
    """Soft-delete the caller's asset; ``NotFound`` if it is missing or deleted already."""
    with db.uow() as uow:
        if not uow.assets.soft_delete(user_id, asset_id, now):
            raise NotFound("Asset not found.")
        uow.commit()


def restore_asset(db: Database, *, user_id: str, asset_id: uuid.UUID, now: datetime) -> Asset:
    """Undo a delete within ``RESTORE_WINDOW`` (idempotent: a live asset is returned as
    is); ``NotFound`` once the window has passed, whether or not the sweep purged it."""
    with db.uow() as uow:
        asset = uow.assets.restore(user_id, asset_id, now - RESTORE_WINDOW)
        uow.commit()
    if asset is None:
        raise NotFound("Asset not found.")
    return asset
