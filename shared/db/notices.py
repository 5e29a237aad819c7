# ruff: noqa: S608 - SQL here is assembled only from this module's constant column list
"""Usage notices: the outbox the admission's insert writes, read by the user and
published once to the operator's webhook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.db.session import Session

__all__ = ["Notice", "PgNotices"]

_COLS = "id, owner_id, kind, period, generation_id, created_at, read_at, published_at"


@dataclass(frozen=True, slots=True)
class Notice:
    id: UUID
    owner_id: str
    kind: str
    period: str
    generation_id: UUID | None
    created_at: datetime
    read_at: datetime | None
    published_at: datetime | None


def _notice(row: list[object]) -> Notice:
    return Notice(*row)  # type: ignore[arg-type]


class PgNotices:
    def __init__(self, session: Session) -> None:
        self._s = session

    def for_owner(self, owner_id: str, *, limit: int = 50) -> list[Notice]:
        """The user's latest notices, newest first."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM notices WHERE owner_id = :o "
            "ORDER BY created_at DESC, id LIMIT CAST(:n AS int)",
            o=owner_id,
            n=limit,
        )
        return [_notice(r) for r in rows]

    def mark_read(self, owner_id: str, notice_id: UUID, now: datetime) -> Notice | None:
        """Mark one of the user's notices read (the first read time stays); None: not theirs."""
        rows = self._s.run(
            f"UPDATE notices SET read_at = coalesce(read_at, CAST(:now AS timestamptz)) "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o RETURNING {_COLS}",
            id=str(notice_id),
            o=owner_id,
            now=now,
        )
        return _notice(rows[0]) if rows else None

    def claim_unpublished(self, now: datetime, *, limit: int = 100) -> list[Notice]:
        """Notices not yet handed to the webhook queue, oldest first, marked published in
        the same statement (SKIP LOCKED: concurrent drains never hand one over twice). The
        caller un-marks the ones it failed to publish (``unpublish``)."""
        rows = self._s.run(
            f"""
            UPDATE notices SET published_at = CAST(:now AS timestamptz)
            WHERE id IN (
                SELECT id FROM notices WHERE published_at IS NULL
                ORDER BY created_at LIMIT CAST(:n AS int) FOR UPDATE SKIP LOCKED
            )
            RETURNING {_COLS}
            """,
            now=now,
            n=limit,
        )
        return sorted((_notice(r) for r in rows), key=lambda n: n.created_at)

    def unpublish(self, notice_id: UUID) -> None:
        self._s.run(
            "UPDATE notices SET published_at = NULL WHERE id = CAST(:id AS uuid)",
            id=str(notice_id),
        )
