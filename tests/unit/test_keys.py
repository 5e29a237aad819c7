"""Key builders produce exactly the documented strings; period helpers are UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.redis.keys import (
    Keys,
    hour_end,
    hour_key,
    month_end,
    month_key,
    month_key_from_label,
    month_label,
    seconds_until_hour_end,
    seconds_until_month_end,
)

K = Keys("p")


def test_exact_key_strings() -> None:
    assert K.gen_used("u", "202611") == "p:usage:u:gen_used:202611"
    assert K.gen_hour("u", "2026112713") == "p:burst:u:gen_hour:2026112713"
    assert K.full_regen_used("u", "202611") == "p:usage:u:full_regen_used:202611"
    assert K.regen_cooldown("u", "d") == "p:cooldown:u:regen:d"
    assert K.user_leases("u") == "p:conc:u:leases"
    assert K.lease("l") == "p:conc:lease:l"
    assert K.provider("minimax", "M2", "interactive") == "p:conc:provider:minimax:M2:interactive"
    assert K.idem("u", "create", "k") == "p:idem:u:create:k"
    assert K.plan_effective("u") == "p:user:u:plan_effective"
    assert K.boost_until("u") == "p:boost:u:pro_until"
    assert K.refund_marker("g") == "p:refund:g"
    assert Keys().lease("l") == "app:conc:lease:l"


def test_period_keys_are_utc() -> None:
    local = datetime(2026, 12, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert month_key(local) == "202611"
    assert hour_key(local) == "2026113023"
    assert month_label(local) == "2026-11"
    assert month_key_from_label("2026-11") == "202611"
    assert month_key(datetime(2026, 11, 5)) == "202611"  # naive is taken as UTC
    now = datetime(2026, 11, 30, 23, 59, 59, 500_000, tzinfo=UTC)
    assert K.month_counters("u", now) == (
        "p:usage:u:gen_used:202611",
        "p:burst:u:gen_hour:2026113023",
        "p:usage:u:full_regen_used:202611",
    )
    with pytest.raises(ValueError):
        month_key_from_label("2026/11")


def test_period_ends_and_retry_after() -> None:
    now = datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    assert month_end(now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert hour_end(now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_end(datetime(2026, 2, 10, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
    assert seconds_until_month_end(now) == 1
    assert seconds_until_hour_end(datetime(2026, 1, 1, 10, 0, tzinfo=UTC)) == 3600
    assert seconds_until_month_end(datetime(2027, 1, 1, tzinfo=UTC) - timedelta(days=1)) == 86400
