"""Plans, the Pro Boost and effective-plan resolution (SPEC §2)."""

from shared.billing.effective import EffectivePlan, load_effective_plan
from shared.plans import (
    BOOST_DAYS,
    PLANS,
    PROVIDER_CONCURRENCY,
    UNLIMITED,
    Lane,
    Plan,
    PlanName,
    RegenMode,
    extend_boost,
    get_plan,
    resolve_effective_plan,
)

__all__ = [
    "BOOST_DAYS",
    "PLANS",
    "PROVIDER_CONCURRENCY",
    "UNLIMITED",
    "EffectivePlan",
    "Lane",
    "Plan",
    "PlanName",
    "RegenMode",
    "extend_boost",
    "get_plan",
    "load_effective_plan",
    "resolve_effective_plan",
]
