"""GET /v1/drafts, GET / PATCH / DELETE /v1/drafts/{id} (strong ETag, If-Match)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from shared.api.handlers.common import expected_version, path_uuid
from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import DraftPatchRequest, DraftQuery
from shared.api.render import draft_json, draft_summary_json
from shared.db import Draft, UnitOfWork
from shared.errors import NotFound
from shared.services import drafts as service

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["delete_draft", "get_draft", "list_drafts", "patch_draft"]


def _answer(uow: UnitOfWork, draft: Draft) -> ApiResponse:
    generations = uow.generations.list_for_draft(draft.id)
    return ApiResponse.json(200, draft_json(draft, generations), {"ETag": draft.etag})


def get_draft(req: ApiRequest, c: Container) -> ApiResponse:
    draft_id = path_uuid(req)
    with c.db.uow() as uow:
        draft = uow.drafts.get(req.user_id, draft_id)
        if draft is None:
            raise NotFound("Draft not found.")
        return _answer(uow, draft)


def patch_draft(req: ApiRequest, c: Container) -> ApiResponse:
    draft_id = path_uuid(req)
    body = req.parse(DraftPatchRequest)
    changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    if changes.get("selected_variant_id"):
        changes["selected_variant_id"] = uuid.UUID(changes["selected_variant_id"])
    expected = expected_version(req, "draft")
    with c.db.uow() as uow:
        draft = uow.drafts.update(req.user_id, draft_id, changes, expected)
        uow.commit()
        return _answer(uow, draft)


def list_drafts(req: ApiRequest, c: Container) -> ApiResponse:
    query = req.parse_query(DraftQuery)
    page = service.list_drafts(
        c.db,
        user_id=req.user_id,
        platform=query.platform,
        q=query.q,
        limit=query.limit,
        cursor=query.cursor,
        cursor_secret=c.settings.effective_cursor_secret,
    )
    items = [draft_summary_json(item) for item in page.items]
    return ApiResponse.json(200, {"items": items, "next_cursor": page.next_cursor})


def delete_draft(req: ApiRequest, c: Container) -> ApiResponse:
    service.delete_draft(
        c.db, user_id=req.user_id, draft_id=path_uuid(req), now=c.now(),
        expected_version=expected_version(req, "draft"),
    )  # fmt: skip
    return ApiResponse(204)
