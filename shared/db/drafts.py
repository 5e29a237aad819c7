"""Drafts: create, read, list, PATCH, soft delete, purge (their variants: ``variants``)."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from shared.db.cursor import Keyset, decode_cursor, encode_cursor, keyset_after
from shared.db.errors import DraftBusy
from shared.db.models import (
    Draft,
    DraftPage,
    DraftSummary,
    GenerationKind,
    GenerationStatus,
    GenerationSummary,
    Platform,
    RegenContext,
)
from shared.db.session import Session
from shared.errors import NotFound, PreconditionFailed, ValidationFailed

__all__ = ["MAX_DRAFT_PAGE", "PgDrafts"]

MAX_DRAFT_PAGE: Final = 100

_DRAFT_COLS = (
    "id, owner_id, title, brief, platform, tone, duration_seconds, language, "
    "selected_variant_id, version, created_at, updated_at, deleted_at"
)
# Every live read repeats this predicate literally: it is what lets the planner use the
# partial indexes of migrations/0002_lifecycle.sql.
_LIVE = "deleted_at IS NULL"

# Columns a PATCH may change, each with the SQL expression that casts its parameter.
# Only these names are ever interpolated into SQL (values always travel as parameters).
_UPDATABLE: Final[dict[str, str]] = {
    "title": ":title",
    "brief": ":brief",
    "platform": ":platform",
    "tone": ":tone",
    "duration_seconds": "CAST(:duration_seconds AS int)",
    "language": ":language",
    "selected_variant_id": "CAST(:selected_variant_id AS uuid)",
}


def _draft(row: list[Any]) -> Draft:
    return Draft(
        id=row[0],
        owner_id=row[1],
        title=row[2],
        brief=row[3],
        platform=Platform(row[4]),
        tone=row[5],
        duration_seconds=row[6],
        language=row[7],
        selected_variant_id=row[8],
        version=row[9],
        created_at=row[10],
        updated_at=row[11],
        deleted_at=row[12],
    )


def _param(value: object) -> object:
    """Enums and UUIDs travel as their text (pg8000 sends every parameter as text)."""
    return str(value) if isinstance(value, UUID | Platform) else value


class PgDrafts:
    def __init__(self, session: Session) -> None:
        self._s = session

    def create(
        self,
        owner_id: str,
        *,
        title: str | None,
        brief: str,
        platform: Platform,
        tone: str | None,
        duration_seconds: int,
        language: str,
        draft_id: UUID | None = None,
    ) -> Draft:
        """Insert a draft (version 1); the id is generated unless given."""
        rows = self._s.run(
            f"""
            INSERT INTO drafts (id, owner_id, title, brief, platform, tone,
                duration_seconds, language)
            VALUES (CAST(:id AS uuid), :owner, :title, :brief, :platform, :tone,
                CAST(:duration AS int), :language)
            RETURNING {_DRAFT_COLS}
            """,
            id=str(draft_id or uuid4()),
            owner=owner_id,
            title=title,
            brief=brief,
            platform=Platform(platform).value,
            tone=tone,
            duration=duration_seconds,
            language=language,
        )
        return _draft(rows[0])

    def get(self, owner_id: str, draft_id: UUID) -> Draft | None:
        """The draft if it exists and belongs to ``owner_id`` (else None: looks missing)."""
        rows = self._s.run(
            f"SELECT {_DRAFT_COLS} FROM drafts "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_LIVE}",
            id=str(draft_id),
            o=owner_id,
        )
        return _draft(rows[0]) if rows else None

    def get_for_job(
        self, owner_id: str, draft_id: UUID, generation_id: UUID
    ) -> tuple[Draft | None, bool]:
        """The worker's read before its provider call: the live draft (as ``get``) and
        whether the generation's owner asked to cancel it (its first fence point), in
        ONE statement. (None, False) when the generation is gone."""
        cols = ", ".join(f"d.{c}" for c in _DRAFT_COLS.split(", "))
        rows = self._s.run(
            f"SELECT g.cancel_requested_at IS NOT NULL, {cols} FROM generations g "
            "LEFT JOIN drafts d ON d.id = CAST(:id AS uuid) AND d.owner_id = :o "
            "AND d.deleted_at IS NULL WHERE g.id = CAST(:g AS uuid)",
            id=str(draft_id),
            o=owner_id,
            g=str(generation_id),
        )
        if not rows:
            return None, False
        cancel_requested, draft = bool(rows[0][0]), rows[0][1:]
        return (_draft(draft) if draft[0] is not None else None), cancel_requested

    def lock_live(self, owner_id: str, draft_id: UUID) -> bool:
        """Share-lock the live draft for this transaction; False if missing or deleted.

        Race guard: a regeneration takes this lock in the transaction that inserts its
        generation, and ``soft_delete`` takes FOR UPDATE on the same row, so a delete and
        a regeneration admitted at the same moment serialise: either the delete sees
        the queued generation (409) or the regeneration sees the deleted draft (404,
        admission undone). Neither leaves a job running on a deleted draft.
        """
        rows = self._s.run(
            f"SELECT 1 FROM drafts WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_LIVE} "
            "FOR SHARE",
            id=str(draft_id),
            o=owner_id,
        )
        return bool(rows)

    def soft_delete(
        self,
        owner_id: str,
        draft_id: UUID,
        now: datetime,
        expected_version: Collection[int] | None = None,
    ) -> None:
        """Mark the draft deleted; its generations and variants go with it.

        Raises ``NotFound`` (missing, deleted or not yours), ``PreconditionFailed`` (its
        version is not in ``expected_version``) or ``DraftBusy`` (a generation is queued
        or running). The row lock is the race guard described in ``lock_live``.
        """
        current = self._lock(owner_id, draft_id)
        if expected_version is not None and current.version not in expected_version:
            raise PreconditionFailed()
        busy = self._s.run(
            "SELECT 1 FROM generations WHERE draft_id = CAST(:d AS uuid) "
            "AND status IN ('queued', 'running')",
            d=str(draft_id),
        )
        if busy:
            raise DraftBusy(draft_id)
        self._s.run(
            "UPDATE drafts SET deleted_at = CAST(:now AS timestamptz) WHERE id = CAST(:d AS uuid)",
            d=str(draft_id),
            now=now,
        )

    def list(
        self,
        owner_id: str,
        *,
        platform: Platform | None = None,
        q: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        cursor_secret: str,
    ) -> DraftPage:
        """One page of the owner's live drafts, newest first (keyset on created_at, id).

        Each item carries its newest generation and its variant count (two index
        lookups per item on the page, not per draft of the owner). ``q`` matches word
        prefixes in title and brief. The cursor is bound to the owner, the filters and
        this listing (a library cursor is refused here).
        """
        from shared.db.asset_queries import TSQUERY, search_query

        if not 1 <= limit <= MAX_DRAFT_PAGE:
            raise ValidationFailed.field(["limit"], f"Must be between 1 and {MAX_DRAFT_PAGE}.")
        binding = {
            "list": "drafts",
            "platform": Platform(platform).value if platform else None,
            "q": q or None,
        }
        after = (
            decode_cursor(cursor, owner_id=owner_id, filters=binding, secret=cursor_secret)
            if cursor
            else None
        )
        where = ["owner_id = :owner", _LIVE]
        params: dict[str, Any] = {"owner": owner_id, "n": limit + 1}
        if binding["platform"]:
            where.append("platform = :platform")
            params["platform"] = binding["platform"]
        tsquery = search_query(q)
        if tsquery:
            where.append(f"search @@ {TSQUERY}")
            params["tsq"] = tsquery
        if after:
            condition, bound = keyset_after(after)
            where.append(condition)
            params |= bound
        cols = ", ".join(f"d.{c}" for c in _DRAFT_COLS.split(", "))
        rows = self._s.run(
            f"""
            SELECT {cols}, g.id, g.kind, g.status, g.created_at,
                   (SELECT count(*) FROM variants v WHERE v.draft_id = d.id)
            FROM (SELECT {_DRAFT_COLS} FROM drafts WHERE {" AND ".join(where)}
                  ORDER BY created_at DESC, id DESC LIMIT CAST(:n AS int)) d
            LEFT JOIN LATERAL (
                SELECT id, kind, status, created_at FROM generations
                WHERE draft_id = d.id ORDER BY created_at DESC, id DESC LIMIT 1
            ) g ON true
            ORDER BY d.created_at DESC, d.id DESC
            """,
            **params,
        )
        n = len(_DRAFT_COLS.split(", "))
        items = [
            DraftSummary(
                draft=_draft(r[:n]),
                last_generation=(
                    GenerationSummary(
                        r[n], GenerationKind(r[n + 1]), GenerationStatus(r[n + 2]), r[n + 3]
                    )
                    if r[n] is not None
                    else None
                ),
                variant_count=int(r[n + 4]),
            )
            for r in rows
        ]
        if len(items) <= limit:
            return DraftPage(tuple(items), None)
        last = items[limit - 1].draft
        token = encode_cursor(
            Keyset(last.created_at, last.id),
            owner_id=owner_id,
            filters=binding,
            secret=cursor_secret,
        )
        return DraftPage(tuple(items[:limit]), token)

    def export_page(self, owner_id: str, after: Keyset | None, limit: int) -> builtins.list[Draft]:
        """The owner's drafts, deleted ones included, oldest first, after ``after``."""
        where = "owner_id = :o"
        params: dict[str, Any] = {"o": owner_id, "n": limit}
        if after is not None:
            condition, bound = keyset_after(after, newest_first=False)
            where += f" AND {condition}"
            params |= bound
        rows = self._s.run(
            f"SELECT {_DRAFT_COLS} FROM drafts WHERE {where} "
            "ORDER BY created_at, id LIMIT CAST(:n AS int)",
            **params,
        )
        return [_draft(r) for r in rows]

    def purge_deleted(self, deleted_before: datetime, current_month: str, limit: int) -> int:
        """Hard-delete drafts soft-deleted before ``deleted_before`` (generations and
        variants cascade); returns how many.

        A draft with a generation charged to ``current_month`` waits for the month to
        end: the monthly counter is re-seeded from those rows when Redis loses it, and
        purging them early would hand out free quota.
        """
        rows = self._s.run(
            "DELETE FROM drafts WHERE id IN ("
            " SELECT d.id FROM drafts d WHERE d.deleted_at < CAST(:cutoff AS timestamptz)"
            " AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.draft_id = d.id"
            "  AND g.period_month = :month)"
            " ORDER BY d.deleted_at LIMIT CAST(:n AS int)) RETURNING id",
            cutoff=deleted_before,
            month=current_month,
            n=limit,
        )
        return len(rows)

    def update(
        self,
        owner_id: str,
        draft_id: UUID,
        changes: Mapping[str, object],
        expected_version: Collection[int] | None,
    ) -> Draft:
        """Apply ``changes`` and bump the version (the ETag).

        Raises ``NotFound`` (missing or not yours), ``PreconditionFailed`` (the version is
        not ``expected_version``) or ``ValidationFailed`` (``selected_variant_id`` is not
        a variant of this draft), in that order. The draft row is locked first, so two
        concurrent PATCHes with the same If-Match cannot both win.
        """
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable draft fields: {sorted(unknown)}")
        current = self._lock(owner_id, draft_id)
        if expected_version is not None and current.version not in expected_version:
            raise PreconditionFailed()
        if not changes:
            return current
        variant_id = changes.get("selected_variant_id")
        if variant_id is not None and not self._has_variant(draft_id, variant_id):
            raise ValidationFailed.field(
                ["selected_variant_id"], "The variant does not belong to this draft."
            )
        assignments = ", ".join(f"{name} = {_UPDATABLE[name]}" for name in sorted(changes))
        rows = self._s.run(
            f"UPDATE drafts SET {assignments}, version = version + 1, updated_at = now() "
            f"WHERE id = CAST(:draft_id AS uuid) RETURNING {_DRAFT_COLS}",
            draft_id=str(draft_id),
            **{name: _param(value) for name, value in changes.items()},
        )
        return _draft(rows[0])

    def regen_context(
        self, owner_id: str, draft_id: UUID, variant_id: UUID | None
    ) -> RegenContext | None:
        """What a regeneration checks before admission, in ONE statement: None when the
        draft is missing, deleted or not ``owner_id``'s; else whether ``variant_id`` (if given)
        belongs to it, whether a generation is queued or running, and
        ``last_variant_count``."""
        rows = self._s.run(
            """
            SELECT
                CASE WHEN CAST(:v AS uuid) IS NULL THEN NULL ELSE EXISTS (
                    SELECT 1 FROM variants WHERE id = CAST(:v AS uuid) AND draft_id = d.id
                ) END,
                EXISTS (SELECT 1 FROM generations
                        WHERE draft_id = d.id AND status IN ('queued', 'running')),
                (SELECT requested_variants FROM generations
                 WHERE draft_id = d.id AND kind IN ('create', 'regen_full')
                 ORDER BY created_at DESC, id DESC LIMIT 1)
            FROM drafts d WHERE d.id = CAST(:d AS uuid) AND d.owner_id = :o
                AND d.deleted_at IS NULL
            """,
            d=str(draft_id),
            o=owner_id,
            v=str(variant_id) if variant_id else None,
        )
        if not rows:
            return None
        has_variant, busy, last = rows[0]
        return RegenContext(
            variant_ok=None if has_variant is None else bool(has_variant),
            busy=bool(busy),
            last_variant_count=int(last) if last is not None else 1,
        )

    def last_variant_count(self, draft_id: UUID) -> int:
        """Variants requested by the draft's newest create/full regeneration (1 if none).

        The default ``variants`` of a full regeneration (SPEC §4).
        """
        rows = self._s.run(
            "SELECT requested_variants FROM generations "
            "WHERE draft_id = CAST(:d AS uuid) AND kind IN ('create', 'regen_full') "
            "ORDER BY created_at DESC, id DESC LIMIT 1",
            d=str(draft_id),
        )
        return int(rows[0][0]) if rows else 1

    def _lock(self, owner_id: str, draft_id: UUID) -> Draft:
        rows = self._s.run(
            f"SELECT {_DRAFT_COLS} FROM drafts "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_LIVE} FOR UPDATE",
            id=str(draft_id),
            o=owner_id,
        )
        if not rows:
            raise NotFound()
        return _draft(rows[0])

    def _has_variant(self, draft_id: UUID, variant_id: object) -> bool:
        try:
            wanted = UUID(str(variant_id))
        except ValueError:
            return False
        rows = self._s.run(
            "SELECT 1 FROM variants WHERE id = CAST(:v AS uuid) AND draft_id = CAST(:d AS uuid)",
            v=str(wanted),
            d=str(draft_id),
        )
        return bool(rows)
