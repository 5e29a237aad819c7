"""Generations: the queued model jobs, their lifecycle and the usage seed counts.

Status moves forward: queued → running → succeeded | failed | cancelled, and queued →
failed | cancelled; the one step back is ``unclaim`` (running → queued) by the claim that
could not get its slots. A cancel of a running job only sets ``cancel_requested_at``: its
final write then matches nothing, and every terminal move of ``mark_failed`` ends it
``cancelled`` instead of ``failed``.
Every move is a conditional UPDATE (``WHERE status = …``) returning whether it happened,
so redelivered jobs, the failure callback and the sweeper can race safely: exactly one
of them wins each move (DESIGN §5). A claim bumps ``attempts`` and returns it; the worker's
terminal moves carry ``AND attempts = n`` (fencing).
"""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from shared.db.credits import SEED_SQL as CREDITS_SEED_SQL
from shared.db.drafts import variant_rows
from shared.db.errors import DraftBusy, IdempotencyConflict, OwnerGone, UniqueViolation
from shared.db.models import (
    AdmissionTruth,
    Generation,
    GenerationKind,
    GenerationStatus,
    LedgerEntry,
    NewDraft,
    NewVariant,
    Platform,
    SubscriptionStatus,
    charged_sql,
)
from shared.db.session import Session
from shared.errors import NotFound
from shared.plans import PlanName

__all__ = ["CANCELLED", "CANCELLED_MESSAGE", "CANCEL_SCOPE", "ENQUEUE_FAILED", "PgGenerations"]

_COLS = (
    "id, owner_id, draft_id, kind, status, requested_variants, params, plan, period_month, "
    "period_hour, provider, model, lane, request_id, idempotency_scope, idempotency_key, "
    "request_fingerprint, error_code, error_message, attempts, created_at, started_at, "
    "completed_at, cancel_requested_at, credit_id"
)
ERROR_MESSAGE_MAX: Final = 500  # schema.sql bound on generations.error_message
ERROR_CODE_MAX: Final = 64
CANCEL_SCOPE: Final = "generation_cancel"
"""The idempotency scope of POST /v1/generations/{id}/cancel (its keys: ``cancel_keys``)."""
CANCELLED: Final = "CANCELLED"
"""The error code of a cancelled generation (its ``error`` tells the client why it ended)."""
CANCELLED_MESSAGE: Final = "The generation was cancelled by its owner."
ENQUEUE_FAILED: Final = "ENQUEUE_FAILED"
"""The code of a generation whose admission was undone (``fail_and_forget_key``): it never
ran, so its hourly unit was given back too (SPEC §9) and the hour count skips it."""


# The usage rules, one spelling each (the seed counts must agree with the refunds):
# a failed or cancelled generation gave its monthly (and full-regen) unit back; its hourly
# unit only when it never ran: an undone admission (failed ENQUEUE_FAILED, SPEC §9) or a
# cancel while it was still queued (never started, so started_at is NULL).
_REFUNDED_NOT: Final = charged_sql()
_HOUR_GIVEN_BACK_NOT: Final = (
    "NOT ((status = 'failed' AND error_code IS NOT DISTINCT FROM CAST(:aborted AS text)) "
    "OR (status = 'cancelled' AND started_at IS NULL))"
)


def _fence(attempt: int | None) -> str:
    """The claim guard of a terminal move; None: whichever claim (tests, seeding)."""
    return "" if attempt is None else " AND attempts = CAST(:attempt AS int)"


def _generation(row: list[Any]) -> Generation:
    return Generation(
        id=row[0],
        owner_id=row[1],
        draft_id=row[2],
        kind=GenerationKind(row[3]),
        status=GenerationStatus(row[4]),
        requested_variants=row[5],
        params=row[6] or {},
        plan=PlanName(row[7]),
        period_month=row[8],
        period_hour=row[9],
        provider=row[10],
        model=row[11],
        lane=row[12],
        request_id=row[13],
        idempotency_scope=row[14],
        idempotency_key=row[15],
        request_fingerprint=row[16],
        error_code=row[17],
        error_message=row[18],
        attempts=row[19],
        created_at=row[20],
        started_at=row[21],
        completed_at=row[22],
        cancel_requested_at=row[23],
        credit_id=row[24],
    )


# The INSERT both creating statements share: its column list, its VALUES row and (in
# ``_insert_params``) the parameters they bind.
_INSERT_COLS = (
    "id, owner_id, draft_id, kind, requested_variants, params, plan, period_month, "
    "period_hour, provider, model, lane, request_id, idempotency_scope, idempotency_key, "
    "request_fingerprint, credit_id"
)
_INSERT_ROW = (
    "CAST(:id AS uuid), :owner, CAST(:draft AS uuid), :kind, CAST(:n AS int), "
    "CAST(:params AS jsonb), :plan, :month, :hour, :provider, :model, :lane, :request_id, "
    ":scope, :key, :fingerprint, CAST(:credit AS uuid)"
)


# The notice outbox rows written by the same statement as the generation (only when the
# generation is inserted): ``:notices`` is a JSON list of {id, kind, period}.
_NOTICES_CTE = """
    n AS (
        INSERT INTO notices (id, owner_id, kind, period, generation_id)
        SELECT x.id, g.owner_id, x.kind, x.period, g.id
        FROM g, jsonb_to_recordset(CAST(:notices AS jsonb)) AS x(id uuid, kind text, period text)
        ON CONFLICT ON CONSTRAINT notices_once_per_period DO NOTHING
    )"""


def _insert_params(
    *,
    id: UUID,
    owner_id: str,
    draft_id: UUID,
    kind: GenerationKind,
    requested_variants: int,
    plan: PlanName,
    period_month: str,
    period_hour: str,
    provider: str,
    model: str,
    lane: str,
    request_id: str,
    params: Mapping[str, Any] | None,
    idempotency_scope: str | None,
    idempotency_key: str | None,
    request_fingerprint: str | None,
    credit_id: str | None = None,
    notices: str = "[]",
) -> dict[str, Any]:
    return {
        "id": str(id),
        "owner": owner_id,
        "draft": str(draft_id),
        "kind": GenerationKind(kind).value,
        "n": requested_variants,
        "params": json.dumps(dict(params or {})),
        "plan": PlanName(plan).value,
        "month": period_month,
        "hour": period_hour,
        "provider": provider,
        "model": model,
        "lane": str(lane),
        "request_id": request_id,
        "scope": idempotency_scope,
        "key": idempotency_key,
        "fingerprint": request_fingerprint,
        "credit": credit_id,
        "notices": notices,
    }


class PgGenerations:
    def __init__(self, session: Session) -> None:
        self._s = session

    def create(
        self,
        *,
        id: UUID,
        owner_id: str,
        draft_id: UUID,
        kind: GenerationKind,
        requested_variants: int,
        plan: PlanName,
        period_month: str,
        period_hour: str,
        provider: str,
        model: str,
        lane: str,
        request_id: str,
        params: Mapping[str, Any] | None = None,
        idempotency_scope: str | None = None,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
        live_draft: bool = False,
        credit_id: str | None = None,
        notices: str = "[]",
    ) -> Generation:
        """Insert a ``queued`` generation (the id is the caller's: it is also the lease id).

        Raises ``IdempotencyConflict`` when (owner, scope, key) is taken (the transaction
        stays usable: look the stored row up with ``find_by_idempotency``) and
        ``DraftBusy`` when the draft already has a queued/running generation (the
        transaction is aborted: roll back).

        ``live_draft``: in the same statement, share-lock the draft if it is the owner's
        and not deleted (the race guard of ``PgDrafts.lock_live``: a concurrent
        ``soft_delete`` serialises with it), and insert nothing, raising ``NotFound``,
        when it is not. One statement: one round trip in an autocommit unit of work.
        """
        values = (
            f"SELECT {_INSERT_ROW.replace('CAST(:draft AS uuid)', 'd.id')} FROM d"
            if live_draft
            else f"VALUES ({_INSERT_ROW})"
        )
        insert = f"""
            INSERT INTO generations ({_INSERT_COLS})
            {values}
            ON CONFLICT ON CONSTRAINT generations_idempotency_key DO NOTHING
            RETURNING {_COLS}
        """
        sql = insert
        if live_draft:
            sql = f"""
                WITH d AS (
                    SELECT id FROM drafts WHERE id = CAST(:draft AS uuid)
                        AND owner_id = :owner AND deleted_at IS NULL FOR SHARE
                ), g AS ({insert}),{_NOTICES_CTE}
                SELECT (SELECT count(*) FROM d), g.* FROM (SELECT 1) AS one
                LEFT JOIN g ON true
            """
        try:
            rows = self._s.run(
                sql,
                **_insert_params(
                    id=id,
                    owner_id=owner_id,
                    draft_id=draft_id,
                    kind=kind,
                    requested_variants=requested_variants,
                    plan=plan,
                    period_month=period_month,
                    period_hour=period_hour,
                    provider=provider,
                    model=model,
                    lane=lane,
                    request_id=request_id,
                    params=params,
                    idempotency_scope=idempotency_scope,
                    idempotency_key=idempotency_key,
                    request_fingerprint=request_fingerprint,
                    credit_id=credit_id,
                    notices=notices,
                ),
            )
        except UniqueViolation as exc:
            if exc.constraint == "generations_one_active_per_draft":
                raise DraftBusy(draft_id) from exc
            raise
        if live_draft:
            if not rows[0][0]:
                raise NotFound("Draft not found.")
            rows = [rows[0][1:]] if rows[0][1] is not None else []
        if not rows:
            # Only the idempotency constraint is an arbiter; NULL keys never conflict.
            raise IdempotencyConflict(owner_id, idempotency_scope, idempotency_key or "")
        return _generation(rows[0])

    def create_with_draft(
        self,
        *,
        id: UUID,
        owner_id: str,
        draft: NewDraft,
        kind: GenerationKind,
        requested_variants: int,
        plan: PlanName,
        period_month: str,
        period_hour: str,
        provider: str,
        model: str,
        lane: str,
        request_id: str,
        params: Mapping[str, Any] | None = None,
        idempotency_scope: str | None = None,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
        credit_id: str | None = None,
        notices: str = "[]",
    ) -> Generation:
        """Insert the draft and its ``queued`` generation for an existing user: ONE
        statement, so in an autocommit unit of work one round trip, committed.

        The user row is share-locked first (``FOR KEY SHARE``, as the foreign keys would):
        an account deletion in progress is waited for, and a user row it deleted is not
        brought back: nothing is written and ``OwnerGone`` is raised (only a user with a
        plan is admitted, and a plan needs the row). The generation is inserted next and
        the draft only from its RETURNING: when the Idempotency-Key is taken nothing at
        all is written and ``IdempotencyConflict`` is raised.
        """
        cols = ", ".join(f"g.{c}" for c in _COLS.split(", "))
        rows = self._s.run(
            f"""
            WITH u AS (
                SELECT id FROM users WHERE id = :owner FOR KEY SHARE
            ), g AS (
                INSERT INTO generations ({_INSERT_COLS})
                SELECT {_INSERT_ROW} FROM u
                ON CONFLICT ON CONSTRAINT generations_idempotency_key DO NOTHING
                RETURNING {_COLS}
            ), d AS (
                INSERT INTO drafts (id, owner_id, title, brief, platform, tone,
                    duration_seconds, language)
                SELECT g.draft_id, g.owner_id, :title, :brief, :platform, :tone,
                    CAST(:duration AS int), :language
                FROM g
            ),{_NOTICES_CTE}
            SELECT EXISTS (SELECT 1 FROM u), {cols} FROM (SELECT 1) AS one LEFT JOIN g ON TRUE
            """,
            **_insert_params(
                id=id,
                owner_id=owner_id,
                draft_id=draft.id,
                kind=kind,
                requested_variants=requested_variants,
                plan=plan,
                period_month=period_month,
                period_hour=period_hour,
                provider=provider,
                model=model,
                lane=lane,
                request_id=request_id,
                params=params,
                idempotency_scope=idempotency_scope,
                idempotency_key=idempotency_key,
                request_fingerprint=request_fingerprint,
                credit_id=credit_id,
                notices=notices,
            ),
            title=draft.title,
            brief=draft.brief,
            platform=Platform(draft.platform).value,
            tone=draft.tone,
            duration=draft.duration_seconds,
            language=draft.language,
        )
        if not rows[0][0]:
            raise OwnerGone(owner_id)
        if rows[0][1] is None:
            raise IdempotencyConflict(owner_id, idempotency_scope, idempotency_key or "")
        return _generation(rows[0][1:])

    def get(self, owner_id: str, generation_id: UUID) -> Generation | None:
        """The generation if it belongs to ``owner_id`` and its draft is not deleted."""
        cols = ", ".join(f"g.{c}" for c in _COLS.split(", "))
        rows = self._s.run(
            f"SELECT {cols} FROM generations g JOIN drafts d ON d.id = g.draft_id "
            "WHERE g.id = CAST(:id AS uuid) AND g.owner_id = :o AND d.deleted_at IS NULL",
            id=str(generation_id),
            o=owner_id,
        )
        return _generation(rows[0]) if rows else None

    def for_drafts(self, draft_ids: Sequence[UUID]) -> list[Generation]:
        """Every generation of these drafts, oldest first (the export)."""
        if not draft_ids:
            return []
        rows = self._s.run(
            f"SELECT {_COLS} FROM generations WHERE draft_id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY created_at, id",
            ids=[str(d) for d in draft_ids],
        )
        return [_generation(r) for r in rows]

    def active_for_owner(self, owner_id: str, *, lock: bool = False) -> list[Generation]:
        """The owner's queued and running generations (their leases are live); ``lock``:
        FOR UPDATE, so no claim or terminal move of theirs commits meanwhile."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM generations "
            "WHERE owner_id = :o AND status IN ('queued', 'running')"
            + (" FOR UPDATE" if lock else ""),
            o=owner_id,
        )
        return [_generation(r) for r in rows]

    def get_any(self, generation_id: UUID) -> Generation | None:
        """The generation whoever owns it (the worker checks ownership itself)."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM generations WHERE id = CAST(:id AS uuid)",
            id=str(generation_id),
        )
        return _generation(rows[0]) if rows else None

    def find_by_idempotency(self, owner_id: str, scope: str, key: str) -> Generation | None:
        rows = self._s.run(
            f"SELECT {_COLS} FROM generations "
            "WHERE owner_id = :o AND idempotency_scope = :s AND idempotency_key = :k",
            o=owner_id,
            s=scope,
            k=key,
        )
        return _generation(rows[0]) if rows else None

    def active_for_draft(self, draft_id: UUID) -> Generation | None:
        """The draft's queued or running generation, if any (at most one exists)."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM generations "
            "WHERE draft_id = CAST(:d AS uuid) AND status IN ('queued', 'running')",
            d=str(draft_id),
        )
        return _generation(rows[0]) if rows else None

    def list_for_draft(self, draft_id: UUID) -> list[Generation]:
        """The draft's generations, newest first."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM generations WHERE draft_id = CAST(:d AS uuid) "
            "ORDER BY created_at DESC, id DESC",
            d=str(draft_id),
        )
        return [_generation(r) for r in rows]

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
            "status = 'running'" + _fence(attempt),
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
            + _fence(attempt)
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
        cols = ", ".join(f"g.{c}" for c in _COLS.split(", "))
        rows = self._s.run(
            f"SELECT {cols} FROM generations g JOIN drafts d ON d.id = g.draft_id "
            "WHERE g.id = CAST(:id AS uuid) AND g.owner_id = :o AND d.deleted_at IS NULL "
            "FOR UPDATE OF g",
            id=str(generation_id),
            o=owner_id,
        )
        return _generation(rows[0]) if rows else None

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
            "ON CONFLICT ON CONSTRAINT cancel_keys_pkey DO NOTHING",
            o=owner_id,
            k=idempotency_key,
        )

    def request_cancel(self, generation_id: UUID, now: datetime) -> Generation | None:
        """running: remember that its owner asked to cancel it (the first time counts);
        the generation as it is now, or None when it is not running."""
        rows = self._s.run(
            "UPDATE generations SET cancel_requested_at = "
            "coalesce(cancel_requested_at, CAST(:now AS timestamptz)) "
            f"WHERE id = CAST(:id AS uuid) AND status = 'running' RETURNING {_COLS}",
            id=str(generation_id),
            now=now,
        )
        return _generation(rows[0]) if rows else None

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
            f"SELECT {_COLS} FROM generations "
            "WHERE (status = 'queued' AND created_at < CAST(:t AS timestamptz)) "
            "OR (status = 'running' AND started_at < CAST(:r AS timestamptz)) "
            "ORDER BY created_at LIMIT CAST(:n AS int)",
            t=older_than,
            r=running_before or older_than,
            n=limit,
        )
        return [_generation(r) for r in rows]

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
                     AND period_month = :month AND {_REFUNDED_NOT}
                     AND credit_id IS NULL) END,
                CASE WHEN CAST(:want_hour AS bool) THEN
                    (SELECT count(*) FROM generations WHERE owner_id = :o
                     AND period_hour = :hour AND {_HOUR_GIVEN_BACK_NOT}) END,
                CASE WHEN CAST(:want_full AS bool) THEN
                    (SELECT count(*) FROM generations WHERE owner_id = :o
                     AND period_month = :month AND kind = 'regen_full'
                     AND {_REFUNDED_NOT}) END,
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
            f"owner_id = :o AND period_month = :p AND {_REFUNDED_NOT} AND credit_id IS NULL",
            o=owner_id,
            p=month,
        )

    def count_in_hour(self, owner_id: str, hour: str) -> int:
        """Generations admitted in ``hour`` ('YYYYMMDDHH'): a failed one keeps its hourly
        unit (SPEC §2), an undone admission (never queued) does not (SPEC §9), nor does
        one cancelled before it started."""
        return self._count(
            f"owner_id = :o AND period_hour = :p AND {_HOUR_GIVEN_BACK_NOT}",
            o=owner_id,
            p=hour,
            aborted=ENQUEUE_FAILED,
        )

    def count_full_regens_month(self, owner_id: str, month: str) -> int:
        """Full regenerations charged to ``month``, failed and cancelled ones excluded."""
        return self._count(
            f"owner_id = :o AND period_month = :p AND kind = 'regen_full' AND {_REFUNDED_NOT}",
            o=owner_id,
            p=month,
        )

    def _move(self, assignments: str, guard: str, generation_id: UUID, **params: Any) -> bool:
        rows = self._s.run(
            f"UPDATE generations SET {assignments} "
            f"WHERE id = CAST(:id AS uuid) AND {guard} RETURNING id",
            id=str(generation_id),
            **params,
        )
        return bool(rows)

    def _count(self, where: str, **params: Any) -> int:
        rows = self._s.run(f"SELECT count(*) FROM generations WHERE {where}", **params)
        return int(rows[0][0])
