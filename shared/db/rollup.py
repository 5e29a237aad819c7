"""The daily usage rollup (``usage_daily``) and the cost report read over it (SPEC §10).

A day is the UTC calendar day of ``usage_ledger.created_at``. Every query converts with
``AT TIME ZONE 'UTC'`` and bounds by UTC midnights, so the session's TimeZone setting
never moves a row to another day.
"""

# ruff: noqa: S608 - SQL here is assembled only from this module's fixed column names
# (chosen from _GROUP_COLUMNS); every value travels as a bound parameter.

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from shared.db.models import CostLine
from shared.db.session import Session

__all__ = ["GROUP_COLUMNS", "PgRollup"]

# Report group name → column of the unioned rows below; only these names reach SQL.
GROUP_COLUMNS: Final = {
    "day": "to_char(day, 'YYYY-MM-DD')",
    "user": "user_id",
    "plan": "plan",
    "model": "model",
    "source": "source",
}
# Any constant works as long as nothing else takes a transaction-level advisory lock
# with it (migrations use a session-level lock with another key).
_LOCK_KEY: Final = 0x5EE1_D1A7
_UTC_DAY: Final = "(created_at AT TIME ZONE 'UTC')::date"


def _midnight(day: date) -> str:
    return datetime.combine(day, time(), UTC).isoformat()


class PgRollup:
    def __init__(self, session: Session) -> None:
        self._s = session

    def lock(self) -> None:
        """Serialise rollup runs until this transaction ends: two runs deleting and
        re-inserting the same days at once would collide on the primary key."""
        self._s.run("SELECT pg_advisory_xact_lock(CAST(:k AS bigint))", k=_LOCK_KEY)

    def rolled_through(self) -> date | None:
        rows = self._s.run("SELECT rolled_through FROM usage_rollup_state")
        return rows[0][0] if rows else None

    def set_rolled_through(self, day: date, now: datetime) -> None:
        self._s.run(
            "INSERT INTO usage_rollup_state (singleton, rolled_through, updated_at) "
            "VALUES (true, CAST(:d AS date), CAST(:now AS timestamptz)) "
            "ON CONFLICT (singleton) DO UPDATE SET rolled_through = EXCLUDED.rolled_through, "
            "updated_at = EXCLUDED.updated_at",
            d=day.isoformat(),
            now=now.isoformat(),
        )

    def first_ledger_day(self) -> date | None:
        rows = self._s.run(f"SELECT min({_UTC_DAY}) FROM usage_ledger")
        return rows[0][0] if rows else None

    def recompute(self, start: date, end: date, now: datetime) -> int:
        """Replace the rows of days ``start..end`` (inclusive) with fresh sums of the
        ledger; returns how many rows those days now have."""
        self._s.run(
            "DELETE FROM usage_daily WHERE day BETWEEN CAST(:s AS date) AND CAST(:e AS date)",
            s=start.isoformat(),
            e=end.isoformat(),
        )
        rows = self._s.run(
            f"""
            WITH inserted AS (
                INSERT INTO usage_daily (day, user_id, plan, model, source, generations,
                    failed, prompt_tokens, completion_tokens, cost_micro_usd, computed_at)
                SELECT {_UTC_DAY}, owner_id, plan, model, source, count(*),
                    count(*) FILTER (WHERE NOT billable), sum(prompt_tokens),
                    sum(completion_tokens), sum(cost_micro_usd), CAST(:now AS timestamptz)
                FROM usage_ledger
                WHERE created_at >= CAST(:lo AS timestamptz)
                  AND created_at < CAST(:hi AS timestamptz)
                GROUP BY 1, 2, 3, 4, 5
                RETURNING 1
            )
            SELECT count(*) FROM inserted
            """,
            lo=_midnight(start),
            hi=_midnight(end + timedelta(days=1)),
            now=now.isoformat(),
        )
        return int(rows[0][0])

    def user_day_costs(
        self, start: date, end: date, above_micro_usd: int, window_days: int
    ) -> dict[str, dict[date, int]]:
        """Per user and day, the cost of every user who spent more than ``above_micro_usd``
        on some day in ``start..end``, over ``start - window_days .. end``."""
        rows = self._s.run(
            """
            WITH per_day AS (
                SELECT user_id, day, sum(cost_micro_usd) AS cost
                FROM usage_daily
                WHERE day BETWEEN CAST(:w AS date) AND CAST(:e AS date)
                GROUP BY user_id, day
            )
            SELECT user_id, day, cost FROM per_day
            WHERE user_id IN (
                SELECT user_id FROM per_day
                WHERE day >= CAST(:s AS date) AND cost > CAST(:above AS bigint)
            )
            """,
            w=(start - timedelta(days=window_days)).isoformat(),
            s=start.isoformat(),
            e=end.isoformat(),
            above=above_micro_usd,
        )
        found: dict[str, dict[date, int]] = {}
        for user_id, day, cost in rows:
            found.setdefault(str(user_id), {})[day] = int(cost)
        return found

    def costs(
        self, group_by: Sequence[str], start: date, end: date, rolled_through: date | None
    ) -> list[CostLine]:
        """Sums of ``start..end`` grouped by ``group_by`` (names of ``GROUP_COLUMNS``),
        costliest first: days up to ``rolled_through`` from the rollup, later days from
        the ledger itself. Without groups, one line of totals."""
        columns = [GROUP_COLUMNS[g] for g in group_by]  # KeyError: a caller bug
        rollup_end = min(end, rolled_through) if rolled_through else start - timedelta(days=1)
        ledger_start = max(start, rolled_through + timedelta(days=1)) if rolled_through else start
        keys = "".join(f"{c}, " for c in columns)
        ordinals = ", ".join(str(i + 1) for i in range(len(columns)))
        # Costliest first (the cost is the 5th sum, after the keys), then by the keys.
        tail = f"GROUP BY {ordinals} ORDER BY {len(columns) + 5} DESC, {ordinals}"
        rows = self._s.run(
            f"""
            SELECT {keys}coalesce(sum(generations), 0), coalesce(sum(failed), 0),
                coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
                coalesce(sum(cost_micro_usd), 0)
            FROM (
                SELECT day, user_id, plan, model, source, generations, failed,
                    prompt_tokens, completion_tokens, cost_micro_usd
                FROM usage_daily
                WHERE day BETWEEN CAST(:rs AS date) AND CAST(:re AS date)
                UNION ALL
                SELECT {_UTC_DAY}, owner_id, plan, model, source, 1,
                    CASE WHEN billable THEN 0 ELSE 1 END,
                    prompt_tokens, completion_tokens, cost_micro_usd
                FROM usage_ledger
                WHERE created_at >= CAST(:lo AS timestamptz)
                  AND created_at < CAST(:hi AS timestamptz)
            ) AS unioned (day, user_id, plan, model, source, generations, failed,
                prompt_tokens, completion_tokens, cost_micro_usd)
            {tail if columns else ""}
            """,
            rs=start.isoformat(),
            re=rollup_end.isoformat(),
            lo=_midnight(ledger_start),
            hi=_midnight(max(ledger_start, end + timedelta(days=1))),
        )
        n = len(columns)
        return [
            CostLine(
                tuple(str(v) for v in r[:n]),
                int(r[n]),
                int(r[n + 1]),
                int(r[n + 2]),
                int(r[n + 3]),
                int(r[n + 4]),
            )
            for r in rows
        ]
