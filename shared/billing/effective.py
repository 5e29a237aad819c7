"""The effective plan of a user, loaded from Postgres (the truth behind the plan cache)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shared.plans import PlanName, resolve_effective_plan

if TYPE_CHECKING:  # the caller's unit of work (a layer below: billing reads through db)
    from shared.db.database import UnitOfWork

__all__ = ["EffectivePlan", "load_effective_plan"]


@dataclass(frozen=True, slots=True)
class EffectivePlan:
    """The subscription's plan (if it grants one), the boost expiry, and the result.

    ``effective`` is None when the user has no plan: generation endpoints answer 402.
    """

    base_plan: PlanName | None
    boost_expires_at: datetime | None
    effective: PlanName | None


def load_effective_plan(uow: UnitOfWork, user_id: str, now: datetime) -> EffectivePlan:
    """Read subscription and boost; only an active or trialing subscription counts."""
    subscription = uow.subscriptions.get(user_id)
    base = subscription.plan if subscription is not None and subscription.grants_plan else None
    boost_expires_at = uow.boosts.get_expiry(user_id)
    effective = resolve_effective_plan(base, boost_expires_at, now)
    return EffectivePlan(base, boost_expires_at, effective)
