"""Drafts beyond create: the listing, the PATCH and the soft delete (SPEC §9)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime

from shared.db import Database, DraftPage, Platform
from shared.db.asset_queries import unsearchable
from shared.services.views import DraftDetail, with_generations

__all__ = ["delete_draft", "list_drafts", "update_draft"]


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


def update_draft(
    db: Database,
    *,
    user_id: str,
    draft_id: uuid.UUID,
    changes: Mapping[str, object],
    expected_version: Collection[int] | None = None,
) -> DraftDetail:
    """Apply a PATCH's column ``changes`` (``PreconditionFailed`` when ``expected_version``
    is given and the draft's is not in it); the draft as committed, with its generations."""
    with db.uow() as uow:
        draft = uow.drafts.update(user_id, draft_id, changes, expected_version)
        uow.commit()
        return with_generations(uow, draft)
