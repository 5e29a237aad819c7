from datetime import UTC, datetime, timedelta

import pytest

from shared.plans import (
    PLANS,
    UNLIMITED,
    PlanName,
    extend_boost,
    get_plan,
    resolve_effective_plan,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "price", "monthly", "variants", "full", "conc", "hourly", "full_cap", "cooldown"),
    [
        ("basic", 595, 60, 1, False, 1, 10, 0, 20),
        ("standard", 1995, 300, 3, True, 2, 40, 30, 10),
        ("pro", 3995, 900, 5, True, 5, 120, UNLIMITED, 5),
    ],
)
def test_plan_rows_match_spec(
    name: str,
    price: int,
    monthly: int,
    variants: int,
    full: bool,
    conc: int,
    hourly: int,
    full_cap: int,
    cooldown: int,
) -> None:
    plan = get_plan(name)
    assert (
        plan.price_cents,
        plan.generations_per_month,
        plan.max_variants,
        plan.full_regen_allowed,
        plan.concurrent_jobs,
        plan.generations_per_hour,
        plan.full_regens_per_month,
        plan.regen_cooldown_s,
    ) == (price, monthly, variants, full, conc, hourly, full_cap, cooldown)


def test_only_pro_is_unlimited_for_full_regens() -> None:
    assert [p.name for p in PLANS.values() if p.full_regen_unlimited] == [PlanName.PRO]


def test_unknown_plan_raises() -> None:
    with pytest.raises(ValueError):
        get_plan("platinum")


def test_boost_live_gives_pro() -> None:
    assert resolve_effective_plan(PlanName.BASIC, NOW + timedelta(seconds=1), NOW) is PlanName.PRO


def test_boost_expiring_exactly_now_is_over() -> None:
    assert resolve_effective_plan(PlanName.BASIC, NOW, NOW) is PlanName.BASIC


def test_boost_on_pro_is_never_a_downgrade() -> None:
    assert resolve_effective_plan(PlanName.PRO, NOW + timedelta(days=3), NOW) is PlanName.PRO
    assert resolve_effective_plan(PlanName.PRO, NOW - timedelta(days=3), NOW) is PlanName.PRO


def test_boost_without_subscription() -> None:
    assert resolve_effective_plan(None, NOW + timedelta(days=1), NOW) is PlanName.PRO
    assert resolve_effective_plan(None, None, NOW) is None


def test_boost_extends_from_later_of_now_and_expiry() -> None:
    assert extend_boost(None, NOW) == NOW + timedelta(days=30)
    assert extend_boost(NOW - timedelta(days=5), NOW) == NOW + timedelta(days=30)
    assert extend_boost(NOW + timedelta(days=10), NOW) == NOW + timedelta(days=40)
    twice = extend_boost(extend_boost(None, NOW), NOW)
    assert twice == NOW + timedelta(days=60)
