"""Admin routes (role admin): grant plans and boosts, read costs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import AdminBoostRequest, AdminSubscriptionRequest, CostsQuery
from shared.billing.plans import PlanName
from shared.db import SubscriptionStatus
from shared.services.render import rfc3339

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["CostsQuery", "get_costs", "grant_boost", "set_subscription"]


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


def get_costs(req: ApiRequest, c: Container) -> ApiResponse:
    query = req.parse_query(CostsQuery)
    month = query.month or c.now().strftime("%Y-%m")
    with c.db.uow() as uow:
        rows = uow.ledger.costs(month, query.group_by)
    payload = {
        "month": month,
        "group_by": query.group_by,
        "rows": [
            {
                "group": r.group,
                "generations": r.generations,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost_micro_usd": r.cost_micro_usd,
            }
            for r in rows
        ],
    }
    return ApiResponse.json(200, payload)
