"""The library: save (idempotent), search, read, edit (If-Match), delete and restore.

Deleting is soft: the asset leaves every read at once and can be restored for
``RESTORE_WINDOW``; the scheduled sweep purges it after that (``lifecycle``).

Saving is idempotent and its replay must be the first answer byte for byte, so, as in
``generation``, the edge passes a ``render`` callback: the service stores the response it
returns as opaque bytes and never builds one itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from shared.db import (
    Asset,
    AssetPage,
    AssetStatus,
    Database,
    IdempotencyConflict,
    Platform,
    VariantContent,
)
from shared.db.asset_queries import unsearchable
from shared.enforcement import Enforcer, StoredResponse, enforce_idempotency
from shared.errors import IdempotencyKeyReused, NotFound
from shared.services.generation import fingerprint

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "RESTORE_WINDOW",
    "Asset",
    "RawContent",
    "SaveAsset",
    "VariantContent",
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


@dataclass(frozen=True, slots=True)
class RawContent:
    """Content saved as given (not from a draft): it brings its own platform and title."""

    content: VariantContent
    platform: Platform
    title: str


@dataclass(frozen=True, slots=True)
class SaveAsset:
    """Save ``raw`` content, or else the variant ``variant_id`` of the draft ``draft_id``
    (``title`` then defaults to the draft's)."""

    user_id: str
    raw: RawContent | None
    draft_id: str | None
    variant_id: str | None
    title: str | None
    tags: list[str]
    status: AssetStatus
    body: Mapping[str, Any]  # the request's JSON value: its fingerprint is the key's identity
    idem_key: str | None


def _store(
    db: Database, user_id: str, req: SaveAsset, idem_key: str | None, fp: str | None = None
) -> Asset:
    with db.uow() as uow:
        uow.users.touch(user_id)
        if req.raw is not None:
            content, platform, title = req.raw.content, req.raw.platform, req.raw.title
            draft_id, variant_id = None, None
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
            request_fingerprint=fp,
        )
        uow.commit()
        return asset


RenderAsset = Callable[[Asset], StoredResponse]
"""How the edge writes a saved asset: stored as is for idempotent replays."""


def _from_db(db: Database, user_id: str, idem_key: str, fp: str) -> Asset:
    """The first save of ``idem_key``, if it was this very request (same fingerprint)."""
    with db.uow() as uow:
        existing = uow.assets.find_by_idempotency(user_id, idem_key, fp)
    if existing is None:
        raise IdempotencyKeyReused()
    return existing


def save_asset(
    db: Database, enforcer: Enforcer, cmd: SaveAsset, render: RenderAsset
) -> tuple[StoredResponse, bool]:
    """Save a variant or raw content. Returns (rendered response, replayed)."""
    user_id, idem_key, req = cmd.user_id, cmd.idem_key, cmd
    if idem_key is None:
        return render(_store(db, user_id, req, None)), False
    fp = fingerprint(IDEMPOTENCY_SCOPE, cmd.body)
    replay = enforce_idempotency(
        enforcer.get_or_set_idempotency(user_id, IDEMPOTENCY_SCOPE, idem_key, fp)
    )
    if replay is not None:
        return replay, True
    done = False
    try:
        try:
            response = render(_store(db, user_id, req, idem_key, fp))
            replayed = False
        except IdempotencyConflict:
            # The Redis record is gone but Postgres has the first save: replay it if the
            # request is the same (its fingerprint), else 422 as Redis would have said.
            response, replayed = render(_from_db(db, user_id, idem_key, fp)), True
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
    if unsearchable(q):
        return AssetPage(items=(), next_cursor=None)  # a search with no word matches nothing
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


def update_asset(
    db: Database,
    *,
    user_id: str,
    asset_id: uuid.UUID,
    changes: Mapping[str, object],
    expected_version: Collection[int] | None,
) -> Asset:
    """Apply column changes (only the fields given; the content fields are columns of
    their own); ``PreconditionFailed`` (412) when ``expected_version`` is stale."""
    with db.uow() as uow:
        asset = uow.assets.update(user_id, asset_id, changes, expected_version)
        uow.commit()
    return asset


def delete_asset(
    db: Database,
    *,
    user_id: str,
    asset_id: uuid.UUID,
    now: datetime,
    expected_version: Collection[int] | None = None,
) -> None:
    """Soft-delete the caller's asset; ``NotFound`` if it is missing or deleted already,
    ``PreconditionFailed`` (412) when ``expected_version`` is stale."""
    with db.uow() as uow:
        if not uow.assets.soft_delete(user_id, asset_id, now, expected_version):
            raise NotFound("Asset not found.")
        uow.commit()


def restore_asset(
    db: Database,
    *,
    user_id: str,
    asset_id: uuid.UUID,
    now: datetime,
    expected_version: Collection[int] | None = None,
) -> Asset:
    """Undo a delete within ``RESTORE_WINDOW`` (idempotent: a live asset is returned as
    is); ``NotFound`` once the window has passed, whether or not the sweep purged it;
    ``PreconditionFailed`` (412) when ``expected_version`` is stale."""
    with db.uow() as uow:
        asset = uow.assets.restore(user_id, asset_id, now - RESTORE_WINDOW, expected_version)
        uow.commit()
    if asset is None:
        raise NotFound("Asset not found.")
    return asset
