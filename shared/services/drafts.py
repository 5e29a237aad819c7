"""Drafts beyond create: the listing and the soft delete (SPEC §9)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from shared.db import Database, DraftPage, Platform
from shared.db.assets import unsearchable

__all__ = ["delete_draft", "list_drafts"]


def list_drafts(
    db: Database,
    *,
    user_id: str,
    platform: Platform | None,
    q: str | None,
    limit: int,
    cursor: str | None,
    cursor_secret: str,
) -> DraftPage:
    """One page of the caller's live drafts, newest first; none for a search with no
    word."""
    if unsearchable(q):
        return DraftPage(items=(), next_cursor=None)
    with db.uow() as uow:
        return uow.drafts.list(
            user_id, platform=platform, q=q, limit=limit, cursor=cursor,
            cursor_secret=cursor_secret,
        )  # fmt: skip


def delete_draft(
    db: Database,
    *,
    user_id: str,
    draft_id: uuid.UUID,
    now: datetime,
    expected_version: Collection[int] | None = None,
) -> None:
    """Soft-delete a draft: it, its generations and variants answer 404 from now on.

    ``NotFound`` when missing, deleted already or not the caller's; ``DraftBusy`` (409
    GENERATION_IN_PROGRESS) while a generation is queued or running. Assets saved from
    it keep their copied content and their ``source``.
    """
    with db.uow() as uow:
        uow.drafts.soft_delete(user_id, draft_id, now, expected_version)
        uow.commit()
