"""The enforcer's two data ports: where a plan and the ledger's counts come from (Postgres)
when Redis is missing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.billing.plans import PlanName

__all__ = ["PlanInfo", "PlanSource", "Truth", "TruthSource", "UsageSource"]


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
    and the counts asked for (None otherwise)."""

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
