"""Pure parts of operator reporting: ranges, groupings, the rollup window, the anomaly rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.config import ConfigError, load_settings
from shared.db import CostLine
from shared.errors import ValidationFailed
from shared.ops.costs import format_table
from shared.services import reporting
from shared.services.reporting import (
    CostRange,
    CostReport,
    parse_group_by,
    plan_window,
    resolve_range,
    spend_anomalies,
)

TODAY = date(2026, 12, 1)
DAY = date(2026, 11, 30)
USD = 1_000_000
THRESHOLD = 5 * USD


def history(per_day: dict[int, int], cost_today: int) -> dict[str, dict[date, int]]:
    """One user's cost on ``DAY`` and on ``DAY - n`` days."""
    return {"u": {DAY: cost_today, **{DAY - timedelta(days=n): c for n, c in per_day.items()}}}


# ---- the anomaly rule: both sides of each threshold ------------------------------------


@pytest.mark.parametrize(
    ("cost", "expected"),
    [(THRESHOLD, False), (THRESHOLD + 1, True)],
    ids=["at-threshold", "one-micro-above"],
)
def test_absolute_threshold_is_exceeded_strictly(cost: int, expected: bool) -> None:
    # No history: the median is 0, so only the absolute threshold decides.
    assert bool(spend_anomalies(history({}, cost), [DAY], THRESHOLD)) is expected


@pytest.mark.parametrize(
    ("cost", "expected"),
    [(5 * 2 * USD, False), (5 * 2 * USD + 1, True)],
    ids=["at-5x-median", "one-micro-above-5x-median"],
)
def test_five_times_the_trailing_median_is_exceeded_strictly(cost: int, expected: bool) -> None:
    # Seven days at $1, $2 x4, $9, $50: the median is $2, whatever the outliers.
    week = {1: USD, 2: 2 * USD, 3: 2 * USD, 4: 2 * USD, 5: 2 * USD, 6: 9 * USD, 7: 50 * USD}
    found = spend_anomalies(history(week, cost), [DAY], THRESHOLD)
    assert bool(found) is expected
    if found:
        assert (found[0].median_micro_usd, found[0].threshold_micro_usd) == (2 * USD, THRESHOLD)


def test_below_the_absolute_threshold_a_spike_is_not_an_anomaly() -> None:
    # 1000x the median, but under $5.
    assert spend_anomalies(history({1: 1, 2: 1, 3: 1, 4: 1}, 4 * USD), [DAY], THRESHOLD) == []


def test_days_without_usage_count_as_zero_and_older_days_are_ignored() -> None:
    # Three busy days out of seven: the median of the window is 0. A busy day 8 back is
    # outside the window.
    busy = {1: 20 * USD, 2: 20 * USD, 3: 20 * USD, 8: 20 * USD, 9: 20 * USD}
    assert [
        a.median_micro_usd for a in spend_anomalies(history(busy, 6 * USD), [DAY], THRESHOLD)
    ] == [0]
    four_busy = {**busy, 4: 20 * USD}
    assert spend_anomalies(history(four_busy, 6 * USD), [DAY], THRESHOLD) == []


def test_each_requested_day_is_checked_against_its_own_window() -> None:
    costs = {"u": {DAY - timedelta(days=1): 6 * USD, DAY: 6 * USD}}
    found = spend_anomalies(costs, [DAY - timedelta(days=1), DAY], THRESHOLD)
    # The second day's window holds the first ($6): median still 0 (one day of seven).
    assert [a.day for a in found] == [DAY - timedelta(days=1), DAY]


# ---- the rollup window -----------------------------------------------------------------


def test_window_is_the_last_closed_days() -> None:
    assert plan_window(TODAY, DAY, date(2020, 1, 1)) == (date(2026, 11, 28), DAY)
    assert plan_window(TODAY, None, None) == (date(2026, 11, 28), DAY)


def test_window_reaches_back_to_the_watermark_or_the_first_ledger_day() -> None:
    assert plan_window(TODAY, date(2026, 11, 10), None) == (date(2026, 11, 11), DAY)
    assert plan_window(TODAY, None, date(2026, 1, 5)) == (date(2026, 1, 5), DAY)


def test_newly_completed_days() -> None:
    done = reporting._newly_completed
    assert done(None, DAY) == [DAY]
    assert done(DAY, DAY) == []
    assert done(DAY - timedelta(days=2), DAY) == [DAY - timedelta(days=1), DAY]
    assert done(DAY, None) == []


# ---- ranges and groupings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "last"),
    [
        ("2026-11", date(2026, 11, 30)),
        ("2026-12", date(2026, 12, 31)),
        ("2028-02", date(2028, 2, 29)),
    ],
)
def test_month_form_is_the_whole_utc_month(month: str, last: date) -> None:
    rng = resolve_range(TODAY, month=month)
    assert (rng.start, rng.end, rng.month) == (last.replace(day=1), last, month)


def test_range_defaults_to_the_month_to_date_of_to() -> None:
    assert resolve_range(TODAY) == CostRange(TODAY, TODAY)
    assert resolve_range(TODAY, end="2026-11-15") == CostRange(
        date(2026, 11, 1), date(2026, 11, 15)
    )
    assert resolve_range(TODAY, start="2026-10-02") == CostRange(date(2026, 10, 2), TODAY)
    longest = resolve_range(TODAY, start="2025-01-01", end="2026-01-01")
    assert (longest.end - longest.start).days + 1 == reporting.MAX_RANGE_DAYS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"month": "2026-11", "start": "2026-11-01"},
        {"month": "2026-11", "end": "2026-11-30"},
        {"start": "2026-02-30"},
        {"end": "2026-12-02", "start": "2026-12-03"},
        {"start": "2025-01-01", "end": "2026-01-02"},  # 367 days
    ],
)
def test_bad_ranges_are_validation_errors(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed):
        resolve_range(TODAY, **kwargs)


def test_group_by_parsing() -> None:
    assert parse_group_by(None) == ("plan",)
    assert parse_group_by("") == ()
    assert parse_group_by("model, day") == ("model", "day")
    for bad in ("tenant", "user,user", "day,,day"):
        with pytest.raises(ValidationFailed):
            parse_group_by(bad)


# ---- configuration and the operator table ----------------------------------------------


def test_spend_alert_usd_is_exact_and_bounded() -> None:
    assert load_settings({}).spend_alert_micro_usd == 5 * USD
    assert load_settings({"SPEND_ALERT_USD": "0.10"}).spend_alert_micro_usd == 100_000
    for bad in ("-1", "nan", "five"):
        with pytest.raises(ConfigError, match="SPEND_ALERT_USD"):
            load_settings({"SPEND_ALERT_USD": bad})


def test_operator_table_lines_up_groups_and_totals() -> None:
    report = CostReport(
        CostRange(date(2026, 11, 1), date(2026, 11, 30)),
        ("plan", "model"),
        date(2026, 11, 29),
        (
            CostLine(("pro", "MiniMax-M2.5"), 12, 1, 12_000, 6_000, 1_234_567),
            CostLine(("basic", "m1"), 3, 0, 300, 150, 7),
        ),
        CostLine((), 15, 1, 12_300, 6_150, 1_234_574),
    )
    assert format_table(report).splitlines() == [
        "Costs 2026-11-01 .. 2026-11-30 (UTC) by plan,model; rollup through 2026-11-29, "
        "later days read from the ledger",
        "",
        "plan   model         generations  failed  prompt_tokens  completion_tokens  cost_usd",
        "-----  ------------  -----------  ------  -------------  -----------------  --------",
        "pro    MiniMax-M2.5           12       1         12,000              6,000  1.234567",
        "basic  m1                      3       0            300                150  0.000007",
        "-----  ------------  -----------  ------  -------------  -----------------  --------",
        "TOTAL                         15       1         12,300              6,150  1.234574",
    ]
    totals = CostReport(report.range, (), None, (), report.totals)
    assert format_table(totals).splitlines()[-1].split() == [
        "TOTAL", "15", "1", "12,300", "6,150", "1.234574",
    ]  # fmt: skip
