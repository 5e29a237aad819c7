"""Creating generations: a ``queued`` generation on a draft, or with its new draft, each
in ONE statement (with the notice outbox rows of the admission that made it)."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from shared.db.errors import DraftBusy, IdempotencyConflict, OwnerGone, UniqueViolation
from shared.db.generation_sql import (
    GENERATION_COLS,
    INSERT_COLS,
    INSERT_ROW,
    NOTICES_CTE,
    generation_from_row,
    insert_params,
)
from shared.db.models import Generation, GenerationKind, NewDraft, Platform
from shared.db.session import Session
from shared.errors import NotFound
from shared.plans import PlanName

__all__ = ["GenerationInserts"]


class GenerationInserts:
    """The creating half of ``PgGenerations`` (which it is a base of)."""

    _s: Session

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
            f"SELECT {INSERT_ROW.replace('CAST(:draft AS uuid)', 'd.id')} FROM d"
            if live_draft
            else f"VALUES ({INSERT_ROW})"
        )
        insert = f"""
            INSERT INTO generations ({INSERT_COLS})
            {values}
            ON CONFLICT ON CONSTRAINT generations_idempotency_key DO NOTHING
            RETURNING {GENERATION_COLS}
        """
        sql = insert
        if live_draft:
            sql = f"""
                WITH d AS (
                    SELECT id FROM drafts WHERE id = CAST(:draft AS uuid)
                        AND owner_id = :owner AND deleted_at IS NULL FOR SHARE
                ), g AS ({insert}),{NOTICES_CTE}
                SELECT (SELECT count(*) FROM d), g.* FROM (SELECT 1) AS one
                LEFT JOIN g ON true
            """
        try:
            rows = self._s.run(
                sql,
                **insert_params(
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
        return generation_from_row(rows[0])

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
        cols = ", ".join(f"g.{c}" for c in GENERATION_COLS.split(", "))
        rows = self._s.run(
            f"""
            WITH u AS (
                SELECT id FROM users WHERE id = :owner FOR KEY SHARE
            ), g AS (
                INSERT INTO generations ({INSERT_COLS})
                SELECT {INSERT_ROW} FROM u
                ON CONFLICT ON CONSTRAINT generations_idempotency_key DO NOTHING
                RETURNING {GENERATION_COLS}
            ), d AS (
                INSERT INTO drafts (id, owner_id, title, brief, platform, tone,
                    duration_seconds, language)
                SELECT g.draft_id, g.owner_id, :title, :brief, :platform, :tone,
                    CAST(:duration AS int), :language
                FROM g
            ),{NOTICES_CTE}
            SELECT EXISTS (SELECT 1 FROM u), {cols} FROM (SELECT 1) AS one LEFT JOIN g ON TRUE
            """,
            **insert_params(
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
        return generation_from_row(rows[0][1:])
