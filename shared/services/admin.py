"""Operator changes to a user's plan: grant or remove a plan, grant a Pro Boost.

The ordering rule lives here, not at the edge: Postgres commits first, then the cached
effective plan is dropped, so the next admission reloads what was committed (dropped
earlier, a concurrent admission could cache the old plan again).
"""

from __future__ import annotations

from datetime import datetime

from shared.db import Database, SubscriptionStatus
from shared.enforcement import Enforcer
from shared.plans import PlanName

__all__ = ["grant_boost", "set_plan"]


def set_plan(db: Database, enforcer: Enforcer, user_id: str, plan: PlanName | None) -> None:
    """Give ``user_id`` the active plan ``plan``, or cancel their subscription (None)."""
    with db.uow() as uow:
        uow.users.touch(user_id)
        if plan is None:
            uow.subscriptions.cancel(user_id)
        else:
            uow.subscriptions.upsert(user_id, PlanName(plan), SubscriptionStatus.ACTIVE)
        uow.commit()
    enforcer.invalidate_plan(user_id)  # after commit: the next admission reloads


def grant_boost(
    db: Database, enforcer: Enforcer, user_id: str, now: datetime, days: int
) -> datetime:
    """Extend ``user_id``'s Pro Boost by ``days`` (from now or its expiry); the new expiry."""
    with db.uow() as uow:
        uow.users.touch(user_id)
        expires_at = uow.boosts.extend(user_id, now, days)
        uow.commit()
    enforcer.invalidate_plan(user_id)
    return expires_at
