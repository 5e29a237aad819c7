"""GET /v1/me/export (streamed) and DELETE /v1/me (SPEC §9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["delete_me", "export_me"]


def export_me(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.export import export_document

    stream = export_document(c.db, req.user_id, c.now())
    headers = {
        "Content-Type": "application/json",
        "Content-Disposition": 'attachment; filename="reel-content-export.json"',
    }
    return ApiResponse(200, headers=headers, stream=stream)


def delete_me(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AccountDeletionResponse
    from shared.services import account as service

    deps = service.AccountDeps(db=c.db, enforcer=c.enforcer, billing=c.billing, now=c.now)
    service.delete_account(deps, req.user_id)
    return ApiResponse.json(202, AccountDeletionResponse(status="deleted"))
