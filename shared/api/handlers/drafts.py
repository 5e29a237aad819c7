"""GET and PATCH /v1/drafts/{id} (strong ETag, If-Match)."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from shared.api.handlers.common import path_uuid
from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import DraftPatchRequest
from shared.db import Draft, UnitOfWork
from shared.errors import NotFound, PreconditionFailed
from shared.services.render import draft_json

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["get_draft", "patch_draft"]


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


def _expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` demands; None for absent or ``*``; 412 if unparseable."""
    if if_match is None or if_match.strip() == "*":
        return None
    m = re.fullmatch(r'\s*"(\d{1,9})"\s*', if_match)
    if m is None:
        raise PreconditionFailed("If-Match does not match the draft's ETag.")
    return int(m.group(1))


def patch_draft(req: ApiRequest, c: Container) -> ApiResponse:
    draft_id = path_uuid(req)
    body = req.parse(DraftPatchRequest)
    changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    if changes.get("selected_variant_id"):
        changes["selected_variant_id"] = uuid.UUID(changes["selected_variant_id"])
    expected = _expected_version(req.headers.get("If-Match"))
    with c.db.uow() as uow:
        draft = uow.drafts.update(req.user_id, draft_id, changes, expected)
        uow.commit()
        return _answer(uow, draft)
