"""GET /v1/drafts, GET / PATCH / DELETE /v1/drafts/{id} (strong ETag, If-Match)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from shared.api.handlers.common import expected_version, path_uuid
from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.services.views import DraftDetail

__all__ = ["delete_draft", "get_draft", "list_drafts", "patch_draft"]


def _answer(detail: DraftDetail) -> ApiResponse:
    from shared.api.render import draft_json

    body = draft_json(detail.draft, detail.generations)
    return ApiResponse.json(200, body, {"ETag": detail.draft.etag})


def get_draft(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import views

    return _answer(views.draft_detail(c.db, req.user_id, path_uuid(req)))


def patch_draft(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import DraftPatchRequest
    from shared.services import drafts as service

    draft_id = path_uuid(req)
    body = req.parse(DraftPatchRequest)
    changes: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    if changes.get("selected_variant_id"):
        changes["selected_variant_id"] = uuid.UUID(changes["selected_variant_id"])
    detail = service.update_draft(
        c.db, user_id=req.user_id, draft_id=draft_id, changes=changes,
        expected_version=expected_version(req, "draft"),
    )  # fmt: skip
    return _answer(detail)


def list_drafts(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import DraftQuery
    from shared.api.render import draft_summary_json
    from shared.services import drafts as service

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
    from shared.services import drafts as service

    service.delete_draft(
        c.db, user_id=req.user_id, draft_id=path_uuid(req), now=c.now(),
        expected_version=expected_version(req, "draft"),
    )  # fmt: skip
    return ApiResponse(204)
