"""The enforcer's two data ports: where a plan and the ledger's counts come from (Postgres)
when Redis is missing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.plans import PlanName
from shared.redis.keys import hour_label, month_label

__all__ = ["LedgerTruth", "PlanInfo", "PlanSource", "Truth", "TruthSource", "UsageSource"]


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """A user's subscription as Postgres knows it."""

    base_plan: PlanName | None
    boost_expires_at: datetime | None = None


class PlanSource(Protocol):
    def load_plan(self, user_id: str) -> PlanInfo:
        """The user's base plan and boost expiry (Postgres)."""
        ...


@dataclass(frozen=True, slots=True)
class Truth:
    """What Postgres knows that Redis is missing: the plan (None when not asked for)
    and the counts asked for (None otherwise). The counts are the scripts' seeds: each
    field is named as the script's ``need_seed`` reply names the counter."""

    plan: PlanInfo | None = None
    month: int | None = None
    hour: int | None = None
    full: int | None = None
    credits: str | None = None  # the credits seed (see lua/lib/credits.lua), "-" for none


class TruthSource(Protocol):
    def load_truth(
        self, user_id: str, now: datetime, *, plan: bool, counters: frozenset[str]
    ) -> Truth:
        """The plan (if ``plan``) and the counts named in ``counters`` ('month', 'hour',
        'full', 'credits'), read together: a user's first request of a period pays one read."""
        ...


class UsageSource(Protocol):
    """The usage ledger (Postgres): counts that seed missing Redis counters."""

    def count_month(self, user_id: str, month: str) -> int:
        """Charged (non-failed) generations in month ``YYYY-MM``."""
        ...

    def count_hour(self, user_id: str, hour: str) -> int:
        """Charged generations in hour ``YYYYMMDDHH``."""
        ...

    def count_full_regens(self, user_id: str, month: str) -> int:
        """Charged full regenerations in month ``YYYY-MM``."""
        ...

    def credits_seed(self, user_id: str) -> str:
        """The user's credits as ``lua/lib/credits.lua`` seeds them ("-" for none)."""
        ...


class LedgerTruth:
    """A ``TruthSource`` over a ``PlanSource`` and a ``UsageSource``: one read per thing
    asked for (an adapter that can read them together is passed as ``truth`` instead)."""

    def __init__(self, plans: PlanSource, usage: UsageSource) -> None:
        self._plans = plans
        self._usage = usage

    def load_truth(
        self, user_id: str, now: datetime, *, plan: bool, counters: frozenset[str]
    ) -> Truth:
        usage, month = self._usage, month_label(now)
        return Truth(
            plan=self._plans.load_plan(user_id) if plan else None,
            month=usage.count_month(user_id, month) if "month" in counters else None,
            hour=usage.count_hour(user_id, hour_label(now)) if "hour" in counters else None,
            full=usage.count_full_regens(user_id, month) if "full" in counters else None,
            credits=usage.credits_seed(user_id) if "credits" in counters else None,
        )
