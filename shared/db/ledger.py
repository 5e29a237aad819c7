"""The usage ledger: one row of tokens and provider cost per finished generation."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.billing.plans import PlanName
from shared.db.models import GenerationKind, LedgerEntry
from shared.db.session import Session

__all__ = ["PgLedger"]

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

    def get(self, generation_id: UUID) -> LedgerEntry | None:
        rows = self._s.run(
            f"SELECT {_COLS} FROM usage_ledger WHERE generation_id = CAST(:g AS uuid)",
            g=str(generation_id),
        )
        return _entry(rows[0]) if rows else None
