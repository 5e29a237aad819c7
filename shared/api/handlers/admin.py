"""Admin routes (role admin): grant plans, boosts and generations, read costs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.api.handlers.common import path_uuid
from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.services.credits import Credit

__all__ = [
    "create_grant",
    "credit_json",
    "get_costs",
    "grant_boost",
    "reverse_grant",
    "set_subscription",
]


def set_subscription(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AdminSubscriptionRequest
    from shared.services import admin

    body = req.parse(AdminSubscriptionRequest)
    admin.set_plan(c.db, c.enforcer, body.user_id, body.plan)
    return ApiResponse.json(200, {"user_id": body.user_id, "plan": body.plan})


def grant_boost(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AdminBoostRequest
    from shared.api.render import rfc3339
    from shared.services import admin

    body = req.parse(AdminBoostRequest)
    expires_at = admin.grant_boost(c.db, c.enforcer, body.user_id, c.now(), body.days)
    return ApiResponse.json(200, {"user_id": body.user_id, "expires_at": rfc3339(expires_at)})


def credit_json(credit: Credit) -> dict[str, Any]:
    from shared.api.render import rfc3339

    return {
        "id": str(credit.id),
        "user_id": credit.owner_id,
        "source": credit.source,
        "units": credit.units,
        "removed_units": credit.removed_units,
        "used": credit.used,
        "remaining": credit.remaining,
        "expires_at": rfc3339(credit.expires_at),
        "created_at": rfc3339(credit.created_at),
    }


def create_grant(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AdminGrantRequest
    from shared.services import credits

    body = req.parse(AdminGrantRequest)
    credit = credits.grant(
        c.db,
        c.enforcer,
        user_id=body.user_id,
        generations=body.generations,
        reason=body.reason,
        actor=req.user_id,
        now=c.now(),
        days=body.days,
    )
    return ApiResponse.json(201, credit_json(credit))


def reverse_grant(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import AdminGrantReverseRequest
    from shared.services import credits

    body = req.parse(AdminGrantReverseRequest)
    change = credits.reverse_grant(
        c.db, c.enforcer, path_uuid(req), actor=req.user_id, reason=body.reason
    )
    return ApiResponse.json(200, {**credit_json(change.credit), "removed": change.removed})


def get_costs(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import CostsQuery
    from shared.services import reporting

    query = req.parse_query(CostsQuery)
    report = reporting.report_costs(
        c.db, c.now(), month=query.month, start=query.from_, end=query.to, group_by=query.group_by
    )
    return ApiResponse.json(200, reporting.costs_json(report))
