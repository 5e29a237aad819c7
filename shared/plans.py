"""The plan table (SPEC §2): the only place any plan number lives.

Everything else — admission arguments, usage responses, Stripe prices, tests — reads
these frozen values. Changing a limit is a one-line change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

__all__ = [
    "BOOST_DAYS",
    "BOOST_PRICE_CENTS",
    "GRANT_DAYS",
    "GRANT_MAX_GENERATIONS",
    "LOW_CREDIT_MARK",
    "MAX_VARIANTS",
    "NOTICE_POOL_PERCENTS",
    "PACKS",
    "PLANS",
    "PROVIDER_CONCURRENCY",
    "UNLIMITED",
    "Lane",
    "Pack",
    "PackName",
    "Plan",
    "PlanName",
    "RegenMode",
    "extend_boost",
    "get_plan",
    "resolve_effective_plan",
]

UNLIMITED: Final = -1
"""Sentinel for a limit with no cap (Pro full regenerations)."""


class PlanName(StrEnum):
    BASIC = "basic"
    STANDARD = "standard"
    PRO = "pro"


class RegenMode(StrEnum):
    TARGETED = "targeted"
    FULL = "full"


class Lane(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """One row of the plan table. ``full_regens_per_month`` is ``UNLIMITED`` for Pro."""

    name: PlanName
    price_cents: int
    generations_per_month: int
    max_variants: int
    full_regen_allowed: bool
    concurrent_jobs: int
    generations_per_hour: int
    full_regens_per_month: int
    regen_cooldown_s: int

    @property
    def full_regen_unlimited(self) -> bool:
        return self.full_regens_per_month == UNLIMITED


PLANS: Final[dict[PlanName, Plan]] = {
    PlanName.BASIC: Plan(
        name=PlanName.BASIC,
        price_cents=595,
        generations_per_month=60,
        max_variants=1,
        full_regen_allowed=False,
        concurrent_jobs=1,
        generations_per_hour=10,
        full_regens_per_month=0,
        regen_cooldown_s=20,
    ),
    PlanName.STANDARD: Plan(
        name=PlanName.STANDARD,
        price_cents=1995,
        generations_per_month=300,
        max_variants=3,
        full_regen_allowed=True,
        concurrent_jobs=2,
        generations_per_hour=40,
        full_regens_per_month=30,
        regen_cooldown_s=10,
    ),
    PlanName.PRO: Plan(
        name=PlanName.PRO,
        price_cents=3995,
        generations_per_month=900,
        max_variants=5,
        full_regen_allowed=True,
        concurrent_jobs=5,
        generations_per_hour=120,
        full_regens_per_month=UNLIMITED,
        regen_cooldown_s=5,
    ),
}

MAX_VARIANTS: Final = max(p.max_variants for p in PLANS.values())
"""The most variants any plan allows: the API's bound on ``variants`` (SPEC §4, 1..5)."""

BOOST_PRICE_CENTS: Final = 1995
BOOST_DAYS: Final = 30


class PackName(StrEnum):
    PACK_50 = "pack_50"
    PACK_200 = "pack_200"


@dataclass(frozen=True, slots=True, kw_only=True)
class Pack:
    """A generation pack: one-off generations outside the monthly pool, used once the
    pool is spent (earliest-expiring pack first), valid ``valid_days`` from purchase."""

    name: PackName
    generations: int
    price_cents: int
    valid_days: int


PACKS: Final[dict[PackName, Pack]] = {
    PackName.PACK_50: Pack(name=PackName.PACK_50, generations=50, price_cents=495, valid_days=365),
    PackName.PACK_200: Pack(
        name=PackName.PACK_200, generations=200, price_cents=1695, valid_days=365
    ),
}

GRANT_DAYS: Final = 365
"""A support grant's validity unless the admin names another."""
GRANT_MAX_GENERATIONS: Final = 1000
"""The most generations one support grant may give."""
LOW_CREDIT_MARK: Final = 10
"""A usage notice fires once when the credits left fall to this many."""
NOTICE_POOL_PERCENTS: Final = (80, 100)
"""A usage notice fires once a month when the monthly pool's use reaches each of these."""

PROVIDER_CONCURRENCY: Final[dict[Lane, int]] = {Lane.INTERACTIVE: 50, Lane.BATCH: 10}
"""Default in-flight cap per (provider, model, lane); configurable per deployment."""


def get_plan(name: str | PlanName) -> Plan:
    """The plan called ``name``; raises ``KeyError`` for an unknown name."""
    return PLANS[PlanName(name)]


def resolve_effective_plan(
    base_plan: PlanName | None, boost_expires_at: datetime | None, now: datetime
) -> PlanName | None:
    """Pro while a boost is live (``now < expires_at``), else the base plan (or none).

    A boost never downgrades: a Pro user with a boost stays Pro. A boost alone (no
    subscription) still gives Pro until it expires.
    """
    if boost_expires_at is not None and now < boost_expires_at:
        return PlanName.PRO
    return base_plan


def extend_boost(
    current_expires_at: datetime | None, now: datetime, days: int = BOOST_DAYS
) -> datetime:
    """A new purchase extends from the later of now and the current expiry."""
    start = now if current_expires_at is None or current_expires_at < now else current_expires_at
    return start + timedelta(days=days)
