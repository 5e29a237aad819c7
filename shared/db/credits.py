# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
"""Credits (generation packs and support grants) and their audit trail.

A credit's units left are derived, never stored: ``units - removed_units`` minus the
generations it paid that did not fail (``generations.credit_id``). A failed generation
is refunded, so its unit is back in the credit that paid it, in Postgres as in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from shared.db.models import charged_sql
from shared.db.session import Session

__all__ = ["Credit", "CreditEvent", "PgCredits"]

# Units a credit paid for and kept (refunded generations excluded: failed, cancelled).
_USED: Final = (
    f"(SELECT count(*) FROM generations g WHERE g.credit_id = c.id AND {charged_sql('g.status')})"
)
_COLS: Final = (
    "c.id, c.owner_id, c.source, c.pack, c.units, c.removed_units, c.expires_at, "
    f"c.created_at, c.stripe_checkout_session, c.stripe_payment_intent, {_USED}"
)


@dataclass(frozen=True, slots=True)
class Credit:
    """A pack or grant; ``used`` = generations it paid that were not refunded."""

    id: UUID
    owner_id: str
    source: str
    pack: str | None
    units: int
    removed_units: int
    expires_at: datetime
    created_at: datetime
    stripe_checkout_session: str | None
    stripe_payment_intent: str | None
    used: int

    @property
    def limit(self) -> int:
        """Units still granted (what was not taken away)."""
        return self.units - self.removed_units

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class CreditEvent:
    credit_id: UUID
    action: str
    units: int
    actor: str
    reason: str | None
    created_at: datetime


def _credit(row: list[Any]) -> Credit:
    return Credit(
        id=row[0],
        owner_id=row[1],
        source=row[2],
        pack=row[3],
        units=int(row[4]),
        removed_units=int(row[5]),
        expires_at=row[6],
        created_at=row[7],
        stripe_checkout_session=row[8],
        stripe_payment_intent=row[9],
        used=int(row[10]),
    )


class PgCredits:
    def __init__(self, session: Session) -> None:
        self._s = session

    def insert(
        self,
        *,
        id: UUID,
        owner_id: str,
        source: str,
        units: int,
        expires_at: datetime,
        actor: str,
        reason: str | None = None,
        pack: str | None = None,
        checkout_session: str | None = None,
        payment_intent: str | None = None,
    ) -> Credit | None:
        """Insert a credit and its 'purchased'/'granted' audit row; None (nothing written)
        when the Checkout Session already has its credit (a replayed payment)."""
        rows = self._s.run(
            f"""
            WITH c AS (
                INSERT INTO credits (id, owner_id, source, pack, units, expires_at,
                    stripe_checkout_session, stripe_payment_intent)
                VALUES (CAST(:id AS uuid), :owner, :source, :pack, CAST(:units AS int),
                    CAST(:exp AS timestamptz), :session, :intent)
                ON CONFLICT DO NOTHING
                RETURNING *
            ), e AS (
                INSERT INTO credit_events (credit_id, action, units, actor, reason)
                SELECT c.id, :action, c.units, :actor, :reason FROM c
            )
            SELECT {_COLS.replace(_USED, "0")} FROM c
            """,
            id=str(id),
            owner=owner_id,
            source=source,
            pack=pack,
            units=units,
            exp=expires_at,
            session=checkout_session,
            intent=payment_intent,
            action="purchased" if source == "pack" else "granted",
            actor=actor,
            reason=reason,
        )
        return _credit(rows[0]) if rows else None

    def get(self, credit_id: UUID, *, lock: bool = False) -> Credit | None:
        rows = self._s.run(
            f"SELECT {_COLS} FROM credits c WHERE c.id = CAST(:id AS uuid)"
            + (" FOR UPDATE OF c" if lock else ""),
            id=str(credit_id),
        )
        return _credit(rows[0]) if rows else None

    def by_payment_intent(self, payment_intent: str, *, lock: bool = False) -> Credit | None:
        rows = self._s.run(
            f"SELECT {_COLS} FROM credits c WHERE c.stripe_payment_intent = :pi"
            + (" FOR UPDATE OF c" if lock else ""),
            pi=payment_intent,
        )
        return _credit(rows[0]) if rows else None

    def for_owner(self, owner_id: str) -> list[Credit]:
        """Every credit of the user, earliest expiry first."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM credits c WHERE c.owner_id = :o ORDER BY c.expires_at, c.id",
            o=owner_id,
        )
        return [_credit(r) for r in rows]

    def events(self, credit_id: UUID) -> list[CreditEvent]:
        rows = self._s.run(
            "SELECT credit_id, action, units, actor, reason, created_at FROM credit_events "
            "WHERE credit_id = CAST(:id AS uuid) ORDER BY id",
            id=str(credit_id),
        )
        return [CreditEvent(r[0], r[1], int(r[2]), r[3], r[4], r[5]) for r in rows]

    def remove_unused(
        self, credit_id: UUID, *, keep: int, action: str, actor: str, reason: str | None
    ) -> int:
        """Take units away so that ``max(keep, used)`` stay granted (never below what was
        used, never giving back what was already removed); records the removal. Returns
        the units removed by this call (0: nothing changed, nothing recorded)."""
        rows = self._s.run(
            f"""
            WITH cur AS (
                SELECT c.id, c.units, c.removed_units, {_USED} AS used
                FROM credits c WHERE c.id = CAST(:id AS uuid) FOR UPDATE OF c
            ), upd AS (
                UPDATE credits c
                SET removed_units = cur.units - GREATEST(CAST(:keep AS int), cur.used)
                FROM cur
                WHERE c.id = cur.id
                    AND cur.units - GREATEST(CAST(:keep AS int), cur.used) > cur.removed_units
                RETURNING c.id, c.removed_units - cur.removed_units AS removed
            ), e AS (
                INSERT INTO credit_events (credit_id, action, units, actor, reason)
                SELECT upd.id, :action, upd.removed, :actor, :reason FROM upd
            )
            SELECT removed FROM upd
            """,
            id=str(credit_id),
            keep=keep,
            action=action,
            actor=actor,
            reason=reason,
        )
        return int(rows[0][0]) if rows else 0

    def forfeit_owner(self, owner_id: str, pseudonym: str) -> int:
        """Account deletion: every credit of the owner loses its unused units (recorded as
        'forfeited') and is re-keyed under ``pseudonym``, as the ledger is. Returns the
        units forfeited."""
        rows = self._s.run(
            f"""
            WITH cur AS (
                SELECT c.id, c.units, c.removed_units, {_USED} AS used
                FROM credits c WHERE c.owner_id = :o FOR UPDATE OF c
            ), upd AS (
                UPDATE credits c
                SET owner_id = :p,
                    removed_units = GREATEST(cur.removed_units, cur.units - cur.used)
                FROM cur WHERE c.id = cur.id
                RETURNING c.id, c.removed_units - cur.removed_units AS removed
            ), e AS (
                INSERT INTO credit_events (credit_id, action, units, actor, reason)
                SELECT upd.id, 'forfeited', upd.removed, 'account-deletion', NULL
                FROM upd WHERE upd.removed > 0
            )
            SELECT coalesce(sum(removed), 0) FROM upd
            """,
            o=owner_id,
            p=pseudonym,
        )
        return int(rows[0][0])

    def seed(self, owner_id: str) -> str:
        """The user's credits as ``lua/lib/credits.lua`` seeds them ("-" for none)."""
        rows = self._s.run(f"SELECT {SEED_SQL}", o=owner_id)
        return str(rows[0][0])

    def record_pack_refund(self, payment_intent: str, amount_refunded: int, amount: int) -> int:
        """Remember Stripe's cumulative refunded amount of a pack payment (monotonic: an
        older event never lowers it); returns the amount now on record."""
        rows = self._s.run(
            """
            INSERT INTO stripe_pack_refunds (stripe_payment_intent, amount_refunded, amount)
            VALUES (:pi, CAST(:refunded AS bigint), CAST(:amount AS bigint))
            ON CONFLICT (stripe_payment_intent) DO UPDATE
                SET amount_refunded = GREATEST(stripe_pack_refunds.amount_refunded,
                                               EXCLUDED.amount_refunded),
                    updated_at = now()
            RETURNING amount_refunded, amount
            """,
            pi=payment_intent,
            refunded=amount_refunded,
            amount=amount,
        )
        return int(rows[0][0])

    def pack_refund(self, payment_intent: str) -> tuple[int, int] | None:
        """(amount_refunded, amount) on record for a pack payment, if any refund arrived."""
        rows = self._s.run(
            "SELECT amount_refunded, amount FROM stripe_pack_refunds "
            "WHERE stripe_payment_intent = :pi",
            pi=payment_intent,
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None


SEED_SQL: Final = f"""coalesce((
    SELECT string_agg(
        c.id::text || ':' || (extract(epoch FROM c.expires_at) * 1000)::bigint::text || ':'
        || (c.units - c.removed_units)::text || ':' || {_USED}::text || ':' || c.source,
        ';' ORDER BY c.expires_at, c.id)
    FROM credits c WHERE c.owner_id = :o AND c.units > c.removed_units
), '-')"""
"""One expression: the seed string of the credits of owner ``:o`` (used inside the
admission truth statement too)."""
