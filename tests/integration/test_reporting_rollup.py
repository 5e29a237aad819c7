"""The daily rollup and the cost report on real Postgres (SPEC §10), clock pinned.

Each test gets an empty ledger in a database of its own whose TimeZone is UTC+14
(tests/support/ledger.py), so a day taken in the session's zone instead of UTC shows.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.config import reset_settings_cache
from shared.db import Database
from shared.ops import costs as costs_cli
from shared.ops import rollup as rollup_cli
from shared.services import reporting
from shared.services.reporting import CostRange, cost_report, run_rollup
from tests.support.ledger import Row, daily_rows, reporting_database, reset, seed

NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)  # just after a month turned
THRESHOLD = 5_000_000  # SPEND_ALERT_USD=5
TICK = timedelta(microseconds=1)


def at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


@pytest.fixture(scope="module")
def module_url() -> Iterator[str]:
    with reporting_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_db(module_url: str) -> Iterator[Database]:
    database = Database(module_url, max_connections=3)
    yield database
    database.close()


@pytest.fixture
def db(module_db: Database) -> Database:
    reset(module_db)
    return module_db


def report(
    db: Database, start: str, end: str, group_by: tuple[str, ...] = ("plan",)
) -> reporting.CostReport:
    return cost_report(db, CostRange(date.fromisoformat(start), date.fromisoformat(end)), group_by)


def by_keys(rep: reporting.CostReport) -> dict[tuple[str, ...], tuple[int, int]]:
    return {r.keys: (r.generations, r.cost_micro_usd) for r in rep.rows}


# ---- idempotence, late rows, watermark -----------------------------------------------


def test_rerunning_a_day_gives_the_same_rows(db: Database) -> None:
    seed(db, [Row("alice", at("2026-11-30")), Row("bob", at("2026-11-29"), billable=False)])

    first = run_rollup(db, NOW, THRESHOLD)
    rows = daily_rows(db)
    second = run_rollup(db, NOW, THRESHOLD)

    assert (first.start, first.end) == (date(2026, 11, 28), date(2026, 11, 30))
    assert daily_rows(db) == rows
    assert second.rows == first.rows == 2
    assert rows == [
        (date(2026, 11, 29), "bob", "pro", "MiniMax-M2.5", 1, 1, 100, 50, 1000),
        (date(2026, 11, 30), "alice", "pro", "MiniMax-M2.5", 1, 0, 100, 50, 1000),
    ]
    assert second.rolled_through == date(2026, 11, 30)


def test_a_late_row_for_a_closed_day_is_picked_up_by_the_next_run(db: Database) -> None:
    seed(db, [Row("alice", at("2026-11-30"))])
    run_rollup(db, NOW, THRESHOLD)
    # Committed after the run, but dated on the closed day (a transaction that started
    # before midnight, a backfill): the rollup does not have it yet...
    seed(db, [Row("alice", at("2026-11-30", "23:59:59.999999"), cost_micro_usd=7)])
    assert daily_rows(db)[0][-1] == 1000

    # ...the next scheduled run (a day later: its window still covers 11-30) does.
    run_rollup(db, NOW + timedelta(days=1), THRESHOLD)

    assert daily_rows(db) == [
        (date(2026, 11, 30), "alice", "pro", "MiniMax-M2.5", 2, 0, 200, 100, 1007)
    ]


def test_rows_leaving_a_day_leave_its_rollup(db: Database) -> None:
    # Account deletion rewrites ledger owners (SPEC §9): a recomputed day follows it.
    seed(db, [Row("alice", at("2026-11-30"))])
    run_rollup(db, NOW, THRESHOLD)
    with db.uow() as uow:
        uow._session.run("INSERT INTO users (id) VALUES ('anon-1')")
        uow._session.run("UPDATE usage_ledger SET owner_id = 'anon-1' WHERE owner_id = 'alice'")
        uow.commit()

    run_rollup(db, NOW, THRESHOLD)

    assert [r[1] for r in daily_rows(db)] == ["anon-1"]


def test_first_run_rolls_up_the_whole_ledger_and_an_outage_is_caught_up(db: Database) -> None:
    seed(db, [Row("alice", at("2026-10-02")), Row("alice", at("2026-11-30"))])

    first = run_rollup(db, NOW, THRESHOLD)
    assert (first.start, first.end, first.rolled_through) == (
        date(2026, 10, 2),
        date(2026, 11, 30),
        date(2026, 11, 30),
    )
    # No run for ten days: the next one starts the day after the watermark.
    seed(db, [Row("bob", at("2026-12-03"))])
    later = run_rollup(db, NOW + timedelta(days=10), THRESHOLD)

    assert (later.start, later.end) == (date(2026, 12, 1), date(2026, 12, 10))
    assert [(r[0], r[1]) for r in daily_rows(db)] == [
        (date(2026, 10, 2), "alice"),
        (date(2026, 11, 30), "alice"),
        (date(2026, 12, 3), "bob"),
    ]


def test_a_backfill_that_does_not_join_up_leaves_the_watermark(db: Database) -> None:
    seed(db, [Row("alice", at("2026-11-30"))])
    run_rollup(db, NOW, THRESHOLD)
    seed(db, [Row("old", at("2025-01-15"))])

    done = run_rollup(db, NOW, THRESHOLD, start=date(2025, 1, 1), end=date(2025, 1, 31))
    # Today is still open: an explicit range stops at yesterday.
    capped = run_rollup(db, NOW, THRESHOLD, start=date(2026, 11, 30), end=date(2026, 12, 5))

    assert (done.rows, done.rolled_through) == (1, date(2026, 11, 30))
    assert (capped.end, capped.rolled_through) == (date(2026, 11, 30), date(2026, 11, 30))
    assert daily_rows(db)[0][:2] == (date(2025, 1, 15), "old")


# ---- days and months in UTC ----------------------------------------------------------


def test_days_split_at_utc_midnight_whatever_the_session_time_zone(db: Database) -> None:
    seed(
        db,
        [
            Row("alice", at("2026-11-29", "23:59:59.999999"), cost_micro_usd=1),
            Row("alice", at("2026-11-30", "00:00:00"), cost_micro_usd=10),
            Row("alice", at("2026-11-30", "23:59:59.999999"), cost_micro_usd=100),
            Row("alice", at("2026-12-01", "00:00:00"), cost_micro_usd=1000),  # today
        ],
    )
    before = report(db, "2026-11-29", "2026-12-01", ("day",))
    run_rollup(db, NOW, THRESHOLD)
    after = report(db, "2026-11-29", "2026-12-01", ("day",))

    expected = {("2026-11-29",): (1, 1), ("2026-11-30",): (2, 110), ("2026-12-01",): (1, 1000)}
    assert by_keys(before) == by_keys(after) == expected
    assert [r[0] for r in daily_rows(db)] == [date(2026, 11, 29), date(2026, 11, 30)]
    assert (before.rolled_through, after.rolled_through) == (None, date(2026, 11, 30))


def test_the_month_form_covers_exactly_the_utc_month(db: Database) -> None:
    seed(
        db,
        [
            Row("alice", at("2026-10-31", "23:59:59.999999"), cost_micro_usd=1),
            Row("alice", at("2026-11-01", "00:00:00"), cost_micro_usd=10),
            Row("alice", at("2026-11-30", "23:59:59.999999"), cost_micro_usd=100),
            Row("alice", at("2026-12-01", "00:00:00"), cost_micro_usd=1000),
        ],
    )
    run_rollup(db, NOW, THRESHOLD)
    rng = reporting.resolve_range(NOW.date(), month="2026-11")

    got = cost_report(db, rng, ("user",))

    assert (rng.start, rng.end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert by_keys(got) == {("alice",): (2, 110)}
    december = cost_report(db, reporting.resolve_range(NOW.date(), month="2026-12"), ())
    assert (december.rows, december.totals.cost_micro_usd) == ((), 1000)


# ---- groupings -------------------------------------------------------------------------


def test_groupings_in_the_order_asked_with_totals(db: Database) -> None:
    seed(
        db,
        [
            Row("alice", at("2026-11-29"), plan="pro", model="m1", cost_micro_usd=300),
            Row("alice", at("2026-11-30"), plan="pro", model="m2", cost_micro_usd=200),
            Row("bob", at("2026-11-30"), plan="basic", model="m1", cost_micro_usd=50,
                billable=False),
        ],
    )  # fmt: skip
    run_rollup(db, NOW, THRESHOLD)

    by_model_user = report(db, "2026-11-01", "2026-11-30", ("model", "user"))
    assert [(r.keys, r.cost_micro_usd, r.failed) for r in by_model_user.rows] == [
        (("m1", "alice"), 300, 0),
        (("m2", "alice"), 200, 0),
        (("m1", "bob"), 50, 1),
    ]
    totals = by_model_user.totals
    assert (totals.generations, totals.failed, totals.cost_micro_usd) == (3, 1, 550)
    assert (totals.prompt_tokens, totals.completion_tokens) == (300, 150)
    assert by_keys(report(db, "2026-11-30", "2026-11-30")) == {
        ("pro",): (1, 200),
        ("basic",): (1, 50),
    }
    assert report(db, "2026-11-01", "2026-11-30", ()).rows == ()


GROUPINGS = [
    combo
    for n in range(len(reporting.GROUP_NAMES) + 1)
    for combo in itertools.combinations(reporting.GROUP_NAMES, n)
]
DAYS = [date(2026, 11, 24) + timedelta(days=i) for i in range(8)]  # ..12-01 (today)
ledger_rows = st.lists(
    st.builds(
        Row,
        user=st.sampled_from(["alice", "bob", "carol"]),
        at=st.builds(
            lambda d, s: datetime.combine(d, datetime.min.time(), UTC) + timedelta(seconds=s),
            st.sampled_from(DAYS),
            st.sampled_from([0, 1, 43_200, 86_399]),
        ),
        plan=st.sampled_from(["basic", "standard", "pro"]),
        model=st.sampled_from(["m1", "m2"]),
        prompt_tokens=st.integers(0, 10_000),
        completion_tokens=st.integers(0, 10_000),
        cost_micro_usd=st.integers(0, 10_000_000),
        billable=st.booleans(),
    ),
    max_size=20,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=ledger_rows, rolled=st.booleans(), span=st.sampled_from([(0, 7), (2, 5), (7, 7)]))
def test_every_grouping_sums_to_the_raw_ledger(
    module_db: Database, rows: list[Row], rolled: bool, span: tuple[int, int]
) -> None:
    db = module_db
    reset(db)
    seed(db, rows)
    if rolled:
        run_rollup(db, NOW, THRESHOLD)
    first, last = DAYS[span[0]], DAYS[span[1]]
    inside = [r for r in rows if first <= r.at.date() <= last]

    def key(row: Row, group: tuple[str, ...]) -> tuple[str, ...]:
        values = {"day": row.at.date().isoformat(), "user": row.user, "plan": row.plan}
        # Seeded ledger rows name no credit: the monthly pool paid them all.
        return tuple({**values, "model": row.model, "source": "pool"}[g] for g in group)

    for group in GROUPINGS:
        got = cost_report(db, CostRange(first, last), group)
        expected: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * 5)
        for r in inside:
            sums = expected[key(r, group)]
            for i, v in enumerate(
                (1, int(not r.billable), r.prompt_tokens, r.completion_tokens, r.cost_micro_usd)
            ):
                sums[i] += v
        lines = {
            line.keys: [
                line.generations, line.failed, line.prompt_tokens, line.completion_tokens,
                line.cost_micro_usd,
            ]
            for line in got.rows
        }  # fmt: skip
        assert lines == (dict(expected) if group else {}), group
        t = got.totals
        assert [
            t.generations,
            t.failed,
            t.prompt_tokens,
            t.completion_tokens,
            t.cost_micro_usd,
        ] == [
            len(inside),
            sum(not r.billable for r in inside),
            sum(r.prompt_tokens for r in inside),
            sum(r.completion_tokens for r in inside),
            sum(r.cost_micro_usd for r in inside),
        ], group
        costs = [line.cost_micro_usd for line in got.rows]
        assert costs == sorted(costs, reverse=True)


# ---- spend anomalies -------------------------------------------------------------------


def anomaly_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        r.fields for r in caplog.records if getattr(r, "fields", {}).get("event") == "spend_anomaly"
    ]


def test_a_spend_anomaly_is_logged_once_for_a_completed_day(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    history = [Row("steady", at(f"2026-11-{d}"), cost_micro_usd=2_000_000) for d in range(23, 30)]
    seed(
        db,
        [
            *history,
            Row("steady", at("2026-11-30"), cost_micro_usd=5_000_001),  # > $5 but < 5x $1
            Row("spiky", at("2026-11-30"), cost_micro_usd=5_000_001),  # > $5, median 0
            Row("small", at("2026-11-30"), cost_micro_usd=5_000_000),  # not above $5
        ],
    )
    caplog.set_level(logging.INFO, logger="reel.reporting")

    result = run_rollup(db, NOW, THRESHOLD)
    run_rollup(db, NOW, THRESHOLD)  # a re-run completes no new day: no second alert

    assert [(a.user_id, a.day) for a in result.anomalies] == [("spiky", date(2026, 11, 30))]
    events = anomaly_events(caplog)
    assert len(events) == 1
    assert events[0] | {"event": "spend_anomaly"} == {
        "event": "spend_anomaly",
        "user_id": "spiky",
        "day": "2026-11-30",
        "cost_micro_usd": 5_000_001,
        "median_micro_usd": 0,
        "threshold_micro_usd": THRESHOLD,
    }


# ---- the operator commands -------------------------------------------------------------


def test_operator_commands_roll_up_and_print_the_same_report(
    db: Database,
    module_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Days long past: the commands run on the real clock.
    seed(db, [Row("alice", at("2020-03-02"), cost_micro_usd=1_500_000, plan="basic")])
    monkeypatch.setenv("DATABASE_URL", module_url)
    monkeypatch.setenv("SPEND_ALERT_USD", "1")
    reset_settings_cache()
    try:
        assert rollup_cli.main([]) == 0
        rolled = capsys.readouterr().out
        assert costs_cli.main(["--month", "2020-03", "--group-by", "user,plan"]) == 0
        table = capsys.readouterr().out
        assert costs_cli.main(["--from", "2020-03-02", "--to", "2020-03-01"]) == 2
        error = capsys.readouterr().err
    finally:
        reset_settings_cache()

    assert rolled.startswith("recomputed 2020-03-02 .. ")
    assert "0 spend anomalies" in rolled  # the first run checks only its last day
    assert table.splitlines()[0].startswith("Costs 2020-03-01 .. 2020-03-31 (UTC) by user,plan")
    assert table.splitlines()[4].split() == ["alice", "basic", "1", "0", "100", "50", "1.500000"]
    assert error == "error: from: must not be after to\n"
