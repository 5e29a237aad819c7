"""In-memory stand-ins for the enforcer's two Postgres ports (plans and usage counts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.enforcement.ports import PlanInfo

__all__ = ["FakePlans", "FakeUsage"]


@dataclass
class FakePlans:
    """PlanSource: a dict, counting loads (each one would be a Postgres query)."""

    plans: dict[str, PlanInfo] = field(default_factory=dict)
    loads: int = 0

    def load_plan(self, user_id: str) -> PlanInfo:
        self.loads += 1
        return self.plans.get(user_id, PlanInfo(None))


@dataclass
class FakeUsage:
    """UsageSource: fixed counts per (user, period)."""

    month: dict[tuple[str, str], int] = field(default_factory=dict)
    hour: dict[tuple[str, str], int] = field(default_factory=dict)
    full: dict[tuple[str, str], int] = field(default_factory=dict)
    credits: dict[str, str] = field(default_factory=dict)  # user -> credits seed

    def count_month(self, user_id: str, month: str) -> int:
        return self.month.get((user_id, month), 0)

    def count_hour(self, user_id: str, hour: str) -> int:
        return self.hour.get((user_id, hour), 0)

    def count_full_regens(self, user_id: str, month: str) -> int:
        return self.full.get((user_id, month), 0)

    def credits_seed(self, user_id: str) -> str:
        return self.credits.get(user_id, "-")
