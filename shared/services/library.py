"""Library save (idempotent) and search."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from shared.api.models import CreateAssetRequest
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

__all__ = ["IDEMPOTENCY_SCOPE", "list_assets", "save_asset"]

IDEMPOTENCY_SCOPE = "library_assets"


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
        enforcer.begin_idempotent(user_id, IDEMPOTENCY_SCOPE, idem_key, fp)
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
) -> AssetPage:
    """One page of the caller's library, newest first."""
    with db.uow() as uow:
        return uow.assets.list(
            user_id,
            platform=platform,
            status=status,
            tags=tags,
            q=q,
            limit=limit,
            cursor=cursor,
            cursor_secret=cursor_secret,
        )
