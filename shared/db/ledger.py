"""The usage ledger: one row of tokens and provider cost per finished generation."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.db.models import GenerationKind, LedgerEntry, MonthUsage
from shared.db.session import Session
from shared.plans import PlanName

__all__ = ["PSEUDONYM_PREFIX", "PgLedger"]

PSEUDONYM_PREFIX = "deleted:"
"""Owner ids of a deleted account's ledger rows start with this (no token ``sub`` does)."""

_COLS = (
    "generation_id, owner_id, month, plan, kind, provider, model, prompt_tokens, "
    "completion_tokens, cost_micro_usd, billable, created_at"
)


def _entry(row: list[Any]) -> LedgerEntry:
    return LedgerEntry(
        generation_id=row[0],
        owner_id=row[1],
        month=row[2],
        plan=PlanName(row[3]),
        kind=GenerationKind(row[4]),
        provider=row[5],
        model=row[6],
        prompt_tokens=row[7],
        completion_tokens=row[8],
        cost_micro_usd=row[9],
        billable=row[10],
        created_at=row[11],
    )


class PgLedger:
    def __init__(self, session: Session) -> None:
        self._s = session

    def record(self, entry: LedgerEntry) -> bool:
        """Insert the generation's row; False if it already has one (redelivery)."""
        rows = self._s.run(
            """
            INSERT INTO usage_ledger (generation_id, owner_id, month, plan, kind, provider,
                model, prompt_tokens, completion_tokens, cost_micro_usd, billable, created_at)
            VALUES (CAST(:g AS uuid), :owner, :month, :plan, :kind, :provider, :model,
                CAST(:pt AS int), CAST(:ct AS int), CAST(:cost AS bigint),
                CAST(:billable AS boolean), coalesce(CAST(:at AS timestamptz), now()))
            ON CONFLICT ON CONSTRAINT usage_ledger_generation_key DO NOTHING
            RETURNING id
            """,
            g=str(entry.generation_id),
            owner=entry.owner_id,
            month=entry.month,
            plan=PlanName(entry.plan).value,
            kind=GenerationKind(entry.kind).value,
            provider=entry.provider,
            model=entry.model,
            pt=entry.prompt_tokens,
            ct=entry.completion_tokens,
            cost=entry.cost_micro_usd,
            billable=entry.billable,
            at=entry.created_at.isoformat() if entry.created_at else None,
        )
        return bool(rows)

    def settle_deleted(self, entry: LedgerEntry) -> bool:
        """Write the tokens and cost of a job that ended after its account was deleted into
        the placeholder row the deletion left for it (under the account's pseudonym, zero
        tokens); False when there is none (the job was not running at the deletion)."""
        rows = self._s.run(
            """
            UPDATE usage_ledger SET model = :model, prompt_tokens = CAST(:pt AS int),
                completion_tokens = CAST(:ct AS int), cost_micro_usd = CAST(:cost AS bigint),
                billable = CAST(:billable AS boolean)
            WHERE generation_id = CAST(:g AS uuid) AND owner_id LIKE :pseudonymised
                AND prompt_tokens = 0 AND completion_tokens = 0 AND cost_micro_usd = 0
                AND NOT billable
            RETURNING id
            """,
            g=str(entry.generation_id),
            model=entry.model,
            pt=entry.prompt_tokens,
            ct=entry.completion_tokens,
            cost=entry.cost_micro_usd,
            billable=entry.billable,
            pseudonymised=PSEUDONYM_PREFIX + "%",
        )
        return bool(rows)

    def get(self, generation_id: UUID) -> LedgerEntry | None:
        rows = self._s.run(
            f"SELECT {_COLS} FROM usage_ledger WHERE generation_id = CAST(:g AS uuid)",
            g=str(generation_id),
        )
        return _entry(rows[0]) if rows else None

    def usage_by_month(self, owner_id: str) -> list[MonthUsage]:
        """The owner's ledger per month, oldest first (the export)."""
        rows = self._s.run(
            "SELECT month, count(*), count(*) FILTER (WHERE billable), "
            "coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), "
            "coalesce(sum(cost_micro_usd), 0) "
            "FROM usage_ledger WHERE owner_id = :o GROUP BY month ORDER BY month",
            o=owner_id,
        )
        return [MonthUsage(r[0], *(int(v) for v in r[1:])) for r in rows]

    def pseudonymise(self, owner_id: str, pseudonym: str) -> int:
        """Re-key the owner's rows under ``pseudonym``; how many rows moved.

        Plan, month, tokens and cost stay, so every sum by plan and month is unchanged.
        """
        rows = self._s.run(
            "WITH moved AS (UPDATE usage_ledger SET owner_id = :p WHERE owner_id = :o "
            "RETURNING 1) SELECT count(*) FROM moved",
            o=owner_id,
            p=pseudonym,
        )
        # The daily rollup (SPEC §10) keys rows by user too: re-key them in the same
        # transaction so no report can name the deleted user.
        self._s.run(
            "UPDATE usage_daily SET user_id = :p WHERE user_id = :o", o=owner_id, p=pseudonym
        )
        return int(rows[0][0])
