"""Admin routes (role admin): grant plans and boosts, read costs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.api.handlers.common import path_uuid
from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import (
    AdminBoostRequest,
    AdminGrantRequest,
    AdminGrantReverseRequest,
    AdminSubscriptionRequest,
    CostsQuery,
)
from shared.api.render import rfc3339
from shared.db import SubscriptionStatus
from shared.db.credits import Credit
from shared.plans import PlanName
from shared.services import credits, reporting
from shared.services.reporting import costs_json as render_costs

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = [
    "CostsQuery",
    "create_grant",
    "credit_json",
    "get_costs",
    "grant_boost",
    "render_costs",
    "reverse_grant",
    "set_subscription",
]


def set_subscription(req: ApiRequest, c: Container) -> ApiResponse:
    body = req.parse(AdminSubscriptionRequest)
    with c.db.uow() as uow:
        uow.users.touch(body.user_id)
        if body.plan is None:
            uow.subscriptions.cancel(body.user_id)
        else:
            uow.subscriptions.upsert(body.user_id, PlanName(body.plan), SubscriptionStatus.ACTIVE)
        uow.commit()
    c.enforcer.invalidate_plan(body.user_id)  # after commit: the next admission reloads
    return ApiResponse.json(200, {"user_id": body.user_id, "plan": body.plan})


def grant_boost(req: ApiRequest, c: Container) -> ApiResponse:
    body = req.parse(AdminBoostRequest)
    with c.db.uow() as uow:
        uow.users.touch(body.user_id)
        expires_at = uow.boosts.extend(body.user_id, c.now(), body.days)
        uow.commit()
    c.enforcer.invalidate_plan(body.user_id)
    return ApiResponse.json(200, {"user_id": body.user_id, "expires_at": rfc3339(expires_at)})


def credit_json(credit: Credit) -> dict[str, Any]:
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
    body = req.parse(AdminGrantReverseRequest)
    change = credits.reverse_grant(
        c.db, c.enforcer, path_uuid(req), actor=req.user_id, reason=body.reason
    )
    return ApiResponse.json(200, {**credit_json(change.credit), "removed": change.removed})


def get_costs(req: ApiRequest, c: Container) -> ApiResponse:
    query = req.parse_query(CostsQuery)
    rng = reporting.resolve_range(
        reporting.utc_day(c.now()), month=query.month, start=query.from_, end=query.to
    )
    group_by = reporting.parse_group_by(query.group_by)
    return ApiResponse.json(200, render_costs(reporting.cost_report(c.db, rng, group_by)))
