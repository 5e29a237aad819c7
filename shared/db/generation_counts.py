"""The usage seed counts of generations: what Redis re-seeds its counters from.

The rules are ``generation_sql``'s predicates, one spelling each (the seed counts must
agree with the refunds).
"""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

from typing import Any

from shared.db.credits import SEED_SQL as CREDITS_SEED_SQL
from shared.db.generation_sql import ENQUEUE_FAILED, HOUR_GIVEN_BACK_NOT, REFUNDED_NOT
from shared.db.models import AdmissionTruth, SubscriptionStatus
from shared.db.session import Session
from shared.plans import PlanName

__all__ = ["GenerationCounts"]


class GenerationCounts:
    """The counting half of ``PgGenerations`` (which it is a base of)."""

    _s: Session

    def admission_truth(
        self,
        owner_id: str,
        *,
        month: str,
        hour: str,
        plan: bool,
        counters: frozenset[str],
    ) -> AdmissionTruth:
        """The subscription and boost (if ``plan``) and the counts named in ``counters``
        ('month', 'hour', 'full', as ``count_*`` below), in ONE statement.

        A user's first request of a month or hour needs all of them; each CASE runs its
        subquery only when asked for, so a request that misses one counter pays for one.
        """
        rows = self._s.run(
            f"""
            SELECT
                CASE WHEN CAST(:want_plan AS bool) THEN
                    (SELECT plan FROM subscriptions WHERE user_id = :o) END,
                CASE WHEN CAST(:want_plan AS bool) THEN
                    (SELECT status FROM subscriptions WHERE user_id = :o) END,
                CASE WHEN CAST(:want_plan AS bool) THEN
                    (SELECT expires_at FROM boosts WHERE user_id = :o) END,
                CASE WHEN CAST(:want_month AS bool) THEN
                    (SELECT count(*) FROM generations WHERE owner_id = :o
                     AND period_month = :month AND {REFUNDED_NOT}
                     AND credit_id IS NULL) END,
                CASE WHEN CAST(:want_hour AS bool) THEN
                    (SELECT count(*) FROM generations WHERE owner_id = :o
                     AND period_hour = :hour AND {HOUR_GIVEN_BACK_NOT}) END,
                CASE WHEN CAST(:want_full AS bool) THEN
                    (SELECT count(*) FROM generations WHERE owner_id = :o
                     AND period_month = :month AND kind = 'regen_full'
                     AND {REFUNDED_NOT}) END,
                CASE WHEN CAST(:want_credits AS bool) THEN {CREDITS_SEED_SQL} END
            """,
            o=owner_id,
            month=month,
            hour=hour,
            want_plan=plan,
            want_month="month" in counters,
            want_hour="hour" in counters,
            want_full="full" in counters,
            want_credits="credits" in counters,
            aborted=ENQUEUE_FAILED,
        )
        sub_plan, sub_status, boost, n_month, n_hour, n_full, credits = rows[0]
        grants = sub_status is not None and SubscriptionStatus(sub_status).grants_plan
        return AdmissionTruth(
            base_plan=PlanName(sub_plan) if sub_plan is not None and grants else None,
            boost_expires_at=boost,
            month=None if n_month is None else int(n_month),
            hour=None if n_hour is None else int(n_hour),
            full=None if n_full is None else int(n_full),
            credits=None if credits is None else str(credits),
        )

    def count_charged_month(self, owner_id: str, month: str) -> int:
        """Generations the monthly pool paid in ``month`` ('YYYY-MM'): failed and cancelled
        ones were refunded, and a pack or grant paid the ones with a ``credit_id``."""
        return self._count(
            f"owner_id = :o AND period_month = :p AND {REFUNDED_NOT} AND credit_id IS NULL",
            o=owner_id,
            p=month,
        )

    def count_in_hour(self, owner_id: str, hour: str) -> int:
        """Generations admitted in ``hour`` ('YYYYMMDDHH'): a failed one keeps its hourly
        unit (SPEC §2), an undone admission (never queued) does not (SPEC §9), nor does
        one cancelled before it started."""
        return self._count(
            f"owner_id = :o AND period_hour = :p AND {HOUR_GIVEN_BACK_NOT}",
            o=owner_id,
            p=hour,
            aborted=ENQUEUE_FAILED,
        )

    def count_full_regens_month(self, owner_id: str, month: str) -> int:
        """Full regenerations charged to ``month``, failed and cancelled ones excluded."""
        return self._count(
            f"owner_id = :o AND period_month = :p AND kind = 'regen_full' AND {REFUNDED_NOT}",
            o=owner_id,
            p=month,
        )

    def _count(self, where: str, **params: Any) -> int:
        rows = self._s.run(f"SELECT count(*) FROM generations WHERE {where}", **params)
        return int(rows[0][0])
