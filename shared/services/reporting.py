"""Operator reporting (SPEC §10): the daily rollup, the cost report, spend anomalies.

**Days.** A ledger row belongs to the UTC day of its ``created_at`` (when the provider
cost was incurred). ``usage_daily`` holds one row per (day, user, plan, model, source).

**Idempotent rollup.** A run recomputes whole days: it deletes their rows and sums the
ledger again, in one transaction under an advisory lock. Re-running a day therefore
gives the same rows, and a run that fails leaves nothing behind.

**Late rows.** The scheduled run recomputes the last ``RECOMPUTE_DAYS`` closed days, not
only yesterday: a ledger row can still land on a closed day (its ``created_at`` is the
start of a transaction that commits after midnight; a backfill; an account deletion
pseudonymising the ledger), and the next runs pick it up. This was chosen over tracking
ledger ids: ``bigserial`` ids are not committed in order, so a "last id seen" watermark
silently skips a row whose transaction commits after a higher id's.

**Watermark.** ``rolled_through`` is the last day such that every day up to it has been
rolled up contiguously from the ledger's first day. A run starts at the earlier of its
window and the day after the watermark, so a scheduler outage (or the very first run on
an existing ledger) is caught up by the next run. The cost report reads days up to the
watermark from the rollup and later days (normally just today) from the ledger, so it is
complete even when the rollup is behind.

**Spend anomalies.** For every day a run completes for the first time (so a re-run
alerts nothing twice; the first run on an old ledger checks only its last day), a user
whose day cost exceeds both ``SPEND_ALERT_USD`` and ``ANOMALY_FACTOR`` times the median
of their previous ``ANOMALY_WINDOW_DAYS`` daily costs (days without usage count as 0)
is logged as event ``spend_anomaly`` (a log-based metric and an alert watch it).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from shared.db import CostLine, Database
from shared.db.rollup import GROUP_COLUMNS
from shared.errors import ValidationFailed
from shared.observability.logging import log_event

__all__ = [
    "ANOMALY_FACTOR",
    "ANOMALY_WINDOW_DAYS",
    "DEFAULT_GROUP_BY",
    "GROUP_NAMES",
    "MAX_RANGE_DAYS",
    "RECOMPUTE_DAYS",
    "CostRange",
    "CostReport",
    "RollupResult",
    "SpendAnomaly",
    "cost_report",
    "costs_json",
    "parse_group_by",
    "plan_window",
    "resolve_range",
    "run_rollup",
    "spend_anomalies",
    "utc_day",
]

_log = logging.getLogger("reel.reporting")

GROUP_NAMES: Final = tuple(GROUP_COLUMNS)  # day, user, plan, model, source
DEFAULT_GROUP_BY: Final = ("plan",)
MAX_RANGE_DAYS: Final = 366
RECOMPUTE_DAYS: Final = 3
ANOMALY_WINDOW_DAYS: Final = 7
ANOMALY_FACTOR: Final = 5
_ONE_DAY: Final = timedelta(days=1)
# Reports cover days the service can have data for; the bounds keep every day arithmetic
# (the day before a range, the day after it) inside the calendar.
FIRST_DAY: Final = date(1970, 1, 1)
LAST_DAY: Final = date(9998, 12, 31)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


# ---- the cost report ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostRange:
    """Inclusive UTC days; ``month`` is set when the caller asked with ``month=``."""

    start: date
    end: date
    month: str | None = None


def _parse_day(raw: str, name: str) -> date:
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed.field(["query", name], "must be a date YYYY-MM-DD") from exc
    return _bounded(day, name)


def _bounded(day: date, name: str) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed.field(
            ["query", name], f"must be between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"
        )
    return day


def resolve_range(
    today: date, *, month: str | None = None, start: str | None = None, end: str | None = None
) -> CostRange:
    """The days a report covers. ``month=YYYY-MM`` (the SPEC §4 form) is that month's
    days; else ``from`` defaults to the first day of ``to``'s month and ``to`` to today."""
    if month is not None:
        if start is not None or end is not None:
            raise ValidationFailed.field(["query", "month"], "use either month or from/to")
        try:
            first = _bounded(date.fromisoformat(f"{month}-01"), "month")
        except ValueError as exc:
            raise ValidationFailed.field(["query", "month"], "must be YYYY-MM") from exc
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        return CostRange(first, following - _ONE_DAY, month)
    last = _parse_day(end, "to") if end is not None else today
    first = _parse_day(start, "from") if start is not None else last.replace(day=1)
    if first > last:
        raise ValidationFailed.field(["query", "from"], "must not be after to")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValidationFailed.field(["query", "to"], f"at most {MAX_RANGE_DAYS} days per report")
    return CostRange(first, last)


def parse_group_by(raw: str | None) -> tuple[str, ...]:
    """``day,user,plan,model`` in any order and subset (empty: totals only)."""
    if raw is None:
        return DEFAULT_GROUP_BY
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [n for n in names if n not in GROUP_NAMES]
    if unknown:
        raise ValidationFailed.field(
            ["query", "group_by"], f"unknown group {unknown[0]!r}; use {', '.join(GROUP_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise ValidationFailed.field(["query", "group_by"], "a group is named twice")
    return names


@dataclass(frozen=True, slots=True)
class CostReport:
    range: CostRange
    group_by: tuple[str, ...]
    rolled_through: date | None
    rows: tuple[CostLine, ...]
    totals: CostLine


def _total(lines: Sequence[CostLine]) -> CostLine:
    return CostLine(
        (),
        sum(x.generations for x in lines),
        sum(x.failed for x in lines),
        sum(x.prompt_tokens for x in lines),
        sum(x.completion_tokens for x in lines),
        sum(x.cost_micro_usd for x in lines),
    )


def cost_report(db: Database, rng: CostRange, group_by: Sequence[str]) -> CostReport:
    """Tokens and provider cost of ``rng`` per group, with totals. Every finished
    generation counts, failed ones too: refunded to the user, still paid to the provider."""
    with db.uow() as uow:
        rolled_through = uow.rollup.rolled_through()
        lines = uow.rollup.costs(group_by, rng.start, rng.end, rolled_through)
    rows = tuple(lines) if group_by else ()
    return CostReport(rng, tuple(group_by), rolled_through, rows, _total(lines))


# ---- the rollup --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpendAnomaly:
    user_id: str
    day: date
    cost_micro_usd: int
    median_micro_usd: int
    threshold_micro_usd: int


@dataclass(frozen=True, slots=True)
class RollupResult:
    start: date | None  # None: nothing to do
    end: date | None
    rows: int
    rolled_through: date | None
    anomalies: tuple[SpendAnomaly, ...]


def plan_window(
    today: date, rolled_through: date | None, first_ledger_day: date | None
) -> tuple[date, date]:
    """Days the scheduled run recomputes: the last ``RECOMPUTE_DAYS`` closed days, widened
    back to the day after the watermark (or the ledger's first day before any run)."""
    end = today - _ONE_DAY
    start = end - timedelta(days=RECOMPUTE_DAYS - 1)
    if rolled_through is not None:
        start = min(start, rolled_through + _ONE_DAY)
    elif first_ledger_day is not None:
        start = min(start, first_ledger_day)
    return start, end


def spend_anomalies(
    costs: Mapping[str, Mapping[date, int]], days: Sequence[date], threshold_micro_usd: int
) -> list[SpendAnomaly]:
    """Users whose cost on one of ``days`` exceeds both the threshold and ``ANOMALY_FACTOR``
    times the median of their previous ``ANOMALY_WINDOW_DAYS`` days (missing days are 0)."""
    found: list[SpendAnomaly] = []
    for user_id in sorted(costs):
        per_day = costs[user_id]
        for day in days:
            cost = per_day.get(day, 0)
            if cost <= threshold_micro_usd:
                continue
            window = [
                per_day.get(day - timedelta(days=i), 0) for i in range(1, ANOMALY_WINDOW_DAYS + 1)
            ]
            median = statistics.median(window)
            if cost > ANOMALY_FACTOR * median:
                found.append(SpendAnomaly(user_id, day, cost, int(median), threshold_micro_usd))
    return found


def run_rollup(
    db: Database,
    now: datetime,
    threshold_micro_usd: int,
    *,
    start: date | None = None,
    end: date | None = None,
) -> RollupResult:
    """Recompute the scheduled window (or ``start..end``, capped at yesterday: today is
    still open), move the watermark, then log the anomalies of newly completed days."""
    today = utc_day(now)
    with db.uow() as uow:
        uow.rollup.lock()
        watermark = uow.rollup.rolled_through()
        first = uow.rollup.first_ledger_day()
        if start is None and end is None:
            start, end = plan_window(today, watermark, first)
        else:
            end = min(end or today - _ONE_DAY, today - _ONE_DAY)
            start = start or end
        if start > end:
            return RollupResult(None, None, 0, watermark, ())
        rows = uow.rollup.recompute(start, end, now)
        # Only a run that joins up with what is already complete may move the watermark;
        # a backfill of some older month leaves it alone.
        joins = (
            start <= watermark + _ONE_DAY
            if watermark is not None
            else first is None or start <= first
        )
        new_mark = watermark
        if joins:
            new_mark = end if watermark is None else max(end, watermark)
        if new_mark is not None and new_mark != watermark:
            uow.rollup.set_rolled_through(new_mark, now)
        completed = _newly_completed(watermark, new_mark)
        costs = (
            uow.rollup.user_day_costs(
                completed[0], completed[-1], threshold_micro_usd, ANOMALY_WINDOW_DAYS
            )
            if completed
            else {}
        )
        uow.commit()
    anomalies = spend_anomalies(costs, completed, threshold_micro_usd)
    for a in anomalies:
        # Counted by the log-based metric spend_anomalies (terraform/monitoring.tf).
        log_event(
            _log, "spend_anomaly", level=logging.WARNING, user_id=a.user_id,
            day=a.day.isoformat(), cost_micro_usd=a.cost_micro_usd,
            median_micro_usd=a.median_micro_usd, threshold_micro_usd=a.threshold_micro_usd,
        )  # fmt: skip
    log_event(
        _log, "rollup_finished", start=start.isoformat(), end=end.isoformat(), rows=rows,
        rolled_through=new_mark.isoformat() if new_mark else None, anomalies=len(anomalies),
    )  # fmt: skip
    return RollupResult(start, end, rows, new_mark, tuple(anomalies))


def _newly_completed(before: date | None, after: date | None) -> list[date]:
    if after is None or (before is not None and after <= before):
        return []
    if before is None:
        return [after]  # the first run: check its last day, not the whole history
    return [before + timedelta(days=i) for i in range(1, (after - before).days + 1)]


def _counters(line: CostLine) -> dict[str, int]:
    return {
        "generations": line.generations,
        "failed": line.failed,
        "prompt_tokens": line.prompt_tokens,
        "completion_tokens": line.completion_tokens,
        "cost_micro_usd": line.cost_micro_usd,
    }


def costs_json(report: CostReport) -> dict[str, Any]:
    """The JSON body of GET /v1/admin/costs, also printed by ``python -m shared.ops.costs``
    (so the command line and the API cannot drift)."""
    return {
        "from": report.range.start.isoformat(),
        "to": report.range.end.isoformat(),
        "month": report.range.month,
        "group_by": ",".join(report.group_by),
        "rolled_through": report.rolled_through.isoformat() if report.rolled_through else None,
        "rows": [
            {
                "group": ",".join(r.keys),
                **dict(zip(report.group_by, r.keys, strict=True)),
                **_counters(r),
            }
            for r in report.rows
        ],
        "totals": _counters(report.totals),
    }
