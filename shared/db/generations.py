"""Generations: the queued model jobs and their lifecycle (reads and status moves).

Status moves forward: queued → running → succeeded | failed | cancelled, and queued →
failed | cancelled; the one step back is ``unclaim`` (running → queued) by the claim that
could not get its slots. A cancel of a running job only sets ``cancel_requested_at``: its
final write then matches nothing, and every terminal move of ``mark_failed`` ends it
``cancelled`` instead of ``failed``.
Every move is a conditional UPDATE (``WHERE status = …``) returning whether it happened,
so redelivered jobs, the failure callback and the sweeper can race safely: exactly one
of them wins each move (DESIGN §5). A claim bumps ``attempts`` and returns it; the worker's
terminal moves carry ``AND attempts = n`` (fencing).

``PgGenerations`` also creates them (``generation_inserts``) and counts them for the usage
seeds (``generation_counts``); their shared SQL pieces are ``generation_sql``.
"""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.db.generation_counts import GenerationCounts
from shared.db.generation_inserts import GenerationInserts
from shared.db.generation_sql import (
    CANCEL_SCOPE,
    CANCELLED,
    CANCELLED_MESSAGE,
    ENQUEUE_FAILED,
    ERROR_CODE_MAX,
    ERROR_MESSAGE_MAX,
    GENERATION_COLS,
    fence,
    generation_from_row,
)
from shared.db.models import Generation, GenerationKind, GenerationStatus, LedgerEntry, NewVariant
from shared.db.session import Session
from shared.db.variants import variant_rows
from shared.plans import PlanName

__all__ = ["CANCELLED", "CANCELLED_MESSAGE", "CANCEL_SCOPE", "ENQUEUE_FAILED", "PgGenerations"]


class PgGenerations(GenerationInserts, GenerationCounts):
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, owner_id: str, generation_id: UUID) -> Generation | None:
        """The generation if it belongs to ``owner_id`` and its draft is not deleted."""
        cols = ", ".join(f"g.{c}" for c in GENERATION_COLS.split(", "))
        rows = self._s.run(
            f"SELECT {cols} FROM generations g JOIN drafts d ON d.id = g.draft_id "
            "WHERE g.id = CAST(:id AS uuid) AND g.owner_id = :o AND d.deleted_at IS NULL",
            id=str(generation_id),
            o=owner_id,
        )
        return generation_from_row(rows[0]) if rows else None

    def for_drafts(self, draft_ids: Sequence[UUID]) -> list[Generation]:
        """Every generation of these drafts, oldest first (the export)."""
        if not draft_ids:
            return []
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations WHERE draft_id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY created_at, id",
            ids=[str(d) for d in draft_ids],
        )
        return [generation_from_row(r) for r in rows]

    def active_for_owner(self, owner_id: str, *, lock: bool = False) -> list[Generation]:
        """The owner's queued and running generations (their leases are live); ``lock``:
        FOR UPDATE, so no claim or terminal move of theirs commits meanwhile."""
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations "
            "WHERE owner_id = :o AND status IN ('queued', 'running')"
            + (" FOR UPDATE" if lock else ""),
            o=owner_id,
        )
        return [generation_from_row(r) for r in rows]

    def get_any(self, generation_id: UUID) -> Generation | None:
        """The generation whoever owns it (the worker checks ownership itself)."""
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations WHERE id = CAST(:id AS uuid)",
            id=str(generation_id),
        )
        return generation_from_row(rows[0]) if rows else None

    def find_by_idempotency(self, owner_id: str, scope: str, key: str) -> Generation | None:
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations "
            "WHERE owner_id = :o AND idempotency_scope = :s AND idempotency_key = :k",
            o=owner_id,
            s=scope,
            k=key,
        )
        return generation_from_row(rows[0]) if rows else None

    def active_for_draft(self, draft_id: UUID) -> Generation | None:
        """The draft's queued or running generation, if any (at most one exists)."""
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations "
            "WHERE draft_id = CAST(:d AS uuid) AND status IN ('queued', 'running')",
            d=str(draft_id),
        )
        return generation_from_row(rows[0]) if rows else None

    def list_for_draft(self, draft_id: UUID) -> list[Generation]:
        """The draft's generations, newest first."""
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations WHERE draft_id = CAST(:d AS uuid) "
            "ORDER BY created_at DESC, id DESC",
            d=str(draft_id),
        )
        return [generation_from_row(r) for r in rows]

    def mark_running(self, generation_id: UUID, now: datetime) -> bool:
        """queued → running (counts an attempt); False if it was not queued."""
        return self._move(
            "status = 'running', started_at = CAST(:now AS timestamptz), attempts = attempts + 1",
            "status = 'queued'",
            generation_id,
            now=now,
        )

    def claim(self, generation_id: UUID, now: datetime, stale_before: datetime) -> int | None:
        """Take the job and return its claim number (the new ``attempts``); None if lost.

        queued → running, or take over a running one whose worker died: its ``started_at``
        is before ``stale_before`` (the max job runtime ago). Exactly one concurrent caller
        wins (conditional UPDATE). Every later write of the winning delivery is fenced on
        the number returned, so a paused earlier delivery can no longer finish the job.
        """
        rows = self._s.run(
            "UPDATE generations SET status = 'running', started_at = CAST(:now AS timestamptz), "
            "attempts = attempts + 1 WHERE id = CAST(:id AS uuid) AND (status = 'queued' OR "
            "(status = 'running' AND started_at < CAST(:stale AS timestamptz))) "
            "RETURNING attempts",
            id=str(generation_id),
            now=now,
            stale=stale_before,
        )
        return int(rows[0][0]) if rows else None

    def claim_queued(self, generation_id: UUID, now: datetime, attempts: int) -> int | None:
        """queued → running while ``attempts`` is still the job's number: the claim
        (``attempts + 1``), or None when it is no longer queued or another delivery
        claimed it since ``attempts`` was read (even one that handed it back)."""
        rows = self._s.run(
            "UPDATE generations SET status = 'running', started_at = CAST(:now AS timestamptz), "
            "attempts = attempts + 1 WHERE id = CAST(:id AS uuid) AND status = 'queued' "
            "AND attempts = CAST(:attempts AS int) RETURNING attempts",
            id=str(generation_id),
            now=now,
            attempts=attempts,
        )
        return int(rows[0][0]) if rows else None

    def unclaim(self, generation_id: UUID, attempt: int) -> bool:
        """running → queued while ``attempt`` is still the claim (its slots were taken)."""
        return self._move(
            "status = 'queued', started_at = NULL",
            "status = 'running' AND attempts = CAST(:attempt AS int)",
            generation_id,
            attempt=attempt,
        )

    def mark_succeeded(
        self, generation_id: UUID, now: datetime, *, attempt: int | None = None
    ) -> bool:
        """running → succeeded; False if it was not running or (``attempt`` given) another
        claim holds it. The UPDATE locks the row: a take-over waits for this transaction."""
        return self._move(
            "status = 'succeeded', completed_at = CAST(:now AS timestamptz)",
            "status = 'running'" + fence(attempt),
            generation_id,
            now=now,
            attempt=attempt,
        )

    def succeed_with_variants(
        self,
        generation_id: UUID,
        now: datetime,
        *,
        attempt: int,
        draft_id: UUID,
        variants: Sequence[NewVariant],
        ledger: LedgerEntry,
    ) -> bool:
        """running → succeeded for claim ``attempt``, with its variants and its ledger row:
        ONE statement, so in an autocommit unit of work one round trip, committed.

        The variants and the ledger row are inserted only from the fenced UPDATE's
        RETURNING: a claim that lost the job (ended, or taken over), or a job whose owner
        asked to cancel it (the worker's last fence point), writes nothing and gets False.
        Redelivered rows change nothing (ON CONFLICT DO NOTHING).
        """
        rows = self._s.run(
            """
            WITH s AS (
                UPDATE generations
                SET status = 'succeeded', completed_at = CAST(:now AS timestamptz)
                WHERE id = CAST(:id AS uuid) AND status = 'running'
                    AND attempts = CAST(:attempt AS int) AND cancel_requested_at IS NULL
                RETURNING id
            ), v AS (
                INSERT INTO variants (id, generation_id, draft_id, index, hook, script,
                    caption, hashtags, source_variant_id)
                SELECT x.id, s.id, CAST(:d AS uuid), x.index, x.hook, x.script, x.caption,
                       ARRAY(SELECT jsonb_array_elements_text(x.hashtags)),
                       x.source_variant_id
                FROM s, jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
                    id uuid, index int, hook text, script text, caption text,
                    hashtags jsonb, source_variant_id uuid)
                ON CONFLICT ON CONSTRAINT variants_generation_index_key DO NOTHING
            ), l AS (
                INSERT INTO usage_ledger (generation_id, owner_id, month, plan, kind,
                    provider, model, prompt_tokens, completion_tokens, cost_micro_usd,
                    billable)
                SELECT s.id, :owner, :month, :plan, :kind, :provider, :model,
                    CAST(:pt AS int), CAST(:ct AS int), CAST(:cost AS bigint),
                    CAST(:billable AS boolean)
                FROM s
                ON CONFLICT ON CONSTRAINT usage_ledger_generation_key DO NOTHING
            )
            SELECT id FROM s
            """,
            id=str(generation_id),
            now=now,
            attempt=attempt,
            d=str(draft_id),
            rows=variant_rows(variants),
            owner=ledger.owner_id,
            month=ledger.month,
            plan=PlanName(ledger.plan).value,
            kind=GenerationKind(ledger.kind).value,
            provider=ledger.provider,
            model=ledger.model,
            pt=ledger.prompt_tokens,
            ct=ledger.completion_tokens,
            cost=ledger.cost_micro_usd,
            billable=ledger.billable,
        )
        return bool(rows)

    def mark_failed(
        self,
        generation_id: UUID,
        code: str,
        message: str,
        now: datetime,
        *,
        attempt: int | None = None,
    ) -> bool:
        """queued | running → failed (or cancelled: see ``end_failed``); False if already
        terminal or (``attempt`` given) another claim holds it."""
        return self.end_failed(generation_id, code, message, now, attempt=attempt) is not None

    def end_failed(
        self,
        generation_id: UUID,
        code: str,
        message: str,
        now: datetime,
        *,
        attempt: int | None = None,
    ) -> GenerationStatus | None:
        """queued | running → failed with an error, or → ``cancelled`` when its owner asked
        to cancel it (the sweeper, the failure callback and a provider failure all end a
        cancel-requested job as cancelled; the refund is the same). Returns the status it
        ended with; None if already terminal or (``attempt`` given) another claim holds it.
        """
        rows = self._s.run(
            "UPDATE generations SET "
            "status = CASE WHEN cancel_requested_at IS NULL THEN 'failed' ELSE 'cancelled' END, "
            "completed_at = CAST(:now AS timestamptz), "
            "error_code = CASE WHEN cancel_requested_at IS NULL THEN :code ELSE :cancelled END, "
            "error_message = CASE WHEN cancel_requested_at IS NULL THEN :message "
            "ELSE :cancelled_message END "
            "WHERE id = CAST(:id AS uuid) AND status IN ('queued', 'running')"
            + fence(attempt)
            + " RETURNING status",
            id=str(generation_id),
            now=now,
            code=code[:ERROR_CODE_MAX],
            message=message[:ERROR_MESSAGE_MAX],
            cancelled=CANCELLED,
            cancelled_message=CANCELLED_MESSAGE,
            attempt=attempt,
        )
        return GenerationStatus(rows[0][0]) if rows else None

    def lock_owned(self, owner_id: str, generation_id: UUID) -> Generation | None:
        """The owner's live generation (as ``get``), locked FOR UPDATE for this transaction:
        the worker's claim and terminal moves, the sweeper and an account deletion wait."""
        cols = ", ".join(f"g.{c}" for c in GENERATION_COLS.split(", "))
        rows = self._s.run(
            f"SELECT {cols} FROM generations g JOIN drafts d ON d.id = g.draft_id "
            "WHERE g.id = CAST(:id AS uuid) AND g.owner_id = :o AND d.deleted_at IS NULL "
            "FOR UPDATE OF g",
            id=str(generation_id),
            o=owner_id,
        )
        return generation_from_row(rows[0]) if rows else None

    def mark_cancelled(self, generation_id: UUID, now: datetime, *, attempts: int) -> bool:
        """queued → cancelled while ``attempts`` is still the job's number (no delivery
        claimed it since it was read); False otherwise."""
        return self._move(
            "status = 'cancelled', completed_at = CAST(:now AS timestamptz), "
            "error_code = :code, error_message = :message",
            "status = 'queued' AND attempts = CAST(:attempts AS int)",
            generation_id,
            now=now,
            code=CANCELLED,
            message=CANCELLED_MESSAGE,
            attempts=attempts,
        )

    def end_cancelled(self, generation_id: UUID, now: datetime, *, attempt: int) -> bool:
        """running → cancelled by claim ``attempt``, only when its owner asked; False when
        another claim holds it, it ended, or no cancel was asked."""
        return self._move(
            "status = 'cancelled', completed_at = CAST(:now AS timestamptz), "
            "error_code = :code, error_message = :message",
            "status = 'running' AND attempts = CAST(:attempt AS int) "
            "AND cancel_requested_at IS NOT NULL",
            generation_id,
            now=now,
            code=CANCELLED,
            message=CANCELLED_MESSAGE,
            attempt=attempt,
        )

    def remember_cancel_key(self, owner_id: str, idempotency_key: str) -> None:
        """Note a cancel's Idempotency-Key, so an account deletion can find its Redis
        record; nothing when the user has no row (then the cancel is a 404 anyway)."""
        self._s.run(
            "INSERT INTO cancel_keys (owner_id, idempotency_key) "
            "SELECT id, :k FROM users WHERE id = :o "
            "ON CONFLICT ON CONSTRAINT cancel_keys_pkey DO UPDATE SET created_at = now()",
            o=owner_id,
            k=idempotency_key,
        )

    def purge_cancel_keys(self, used_before: datetime, limit: int) -> int:
        """Forget up to ``limit`` cancel keys last used before ``used_before`` (their Redis
        records expired long ago), oldest first."""
        rows = self._s.run(
            "DELETE FROM cancel_keys WHERE (owner_id, idempotency_key) IN ("
            "SELECT owner_id, idempotency_key FROM cancel_keys "
            "WHERE created_at < CAST(:cutoff AS timestamptz) "
            "ORDER BY created_at LIMIT CAST(:n AS int)) RETURNING owner_id",
            cutoff=used_before,
            n=limit,
        )
        return len(rows)

    def request_cancel(self, generation_id: UUID, now: datetime) -> Generation | None:
        """running: remember that its owner asked to cancel it (the first time counts);
        the generation as it is now, or None when it is not running."""
        rows = self._s.run(
            "UPDATE generations SET cancel_requested_at = "
            "coalesce(cancel_requested_at, CAST(:now AS timestamptz)) "
            f"WHERE id = CAST(:id AS uuid) AND status = 'running' RETURNING {GENERATION_COLS}",
            id=str(generation_id),
            now=now,
        )
        return generation_from_row(rows[0]) if rows else None

    def fail_and_forget_key(self, generation_id: UUID, message: str, now: datetime) -> bool:
        """Mark failed (``ENQUEUE_FAILED``) AND drop its Idempotency-Key: a request that
        ended in a 5xx before anything was queued must not pin its key (a retry creates a
        fresh generation)."""
        return self._move(
            "status = 'failed', completed_at = CAST(:now AS timestamptz), "
            "error_code = :code, error_message = :message, "
            "idempotency_scope = NULL, idempotency_key = NULL, request_fingerprint = NULL",
            "status IN ('queued', 'running')",
            generation_id,
            now=now,
            code=ENQUEUE_FAILED,
            message=message[:ERROR_MESSAGE_MAX],
        )

    def find_stuck(
        self, older_than: datetime, limit: int, running_before: datetime | None = None
    ) -> list[Generation]:
        """Queued generations created before ``older_than`` and running ones started before
        ``running_before`` (default ``older_than``), oldest first."""
        rows = self._s.run(
            f"SELECT {GENERATION_COLS} FROM generations "
            "WHERE (status = 'queued' AND created_at < CAST(:t AS timestamptz)) "
            "OR (status = 'running' AND started_at < CAST(:r AS timestamptz)) "
            "ORDER BY created_at LIMIT CAST(:n AS int)",
            t=older_than,
            r=running_before or older_than,
            n=limit,
        )
        return [generation_from_row(r) for r in rows]

    def _move(self, assignments: str, guard: str, generation_id: UUID, **params: Any) -> bool:
        rows = self._s.run(
            f"UPDATE generations SET {assignments} "
            f"WHERE id = CAST(:id AS uuid) AND {guard} RETURNING id",
            id=str(generation_id),
            **params,
        )
        return bool(rows)
