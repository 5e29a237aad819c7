"""Values several enforcement scripts share: the scope, the references a ticket carries
(lease, charge, idempotency key), a status note, a stored response and a meter.

A value that belongs to one script (its request, its reply) lives in that script's module
under ``scripts/``; the data ports live in ``ports.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shared.plans import Lane

__all__ = [
    "ChargeRef",
    "IdempotencyRef",
    "LeaseRef",
    "Meter",
    "Scope",
    "StatusNote",
    "StoredResponse",
]


class Scope(StrEnum):
    """What is being admitted; every scope costs one generation."""

    CREATE = "create"
    REGEN_TARGETED = "regen_targeted"
    REGEN_FULL = "regen_full"

    @property
    def endpoint(self) -> str:
        """The idempotency scope: one Idempotency-Key space per endpoint (SPEC §3)."""
        return "create" if self is Scope.CREATE else "regenerate"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept for idempotent replay, byte-for-byte."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaseRef:
    """Everything needed to release a lease (the generation id is the lease id).

    ``attempt`` is the worker delivery's claim number (``generations.attempts``): refresh,
    release and finish then act only while no newer claim owns the lease (fencing,
    DESIGN §5). ``None`` (the API's own admission and abort) is not fenced.
    """

    lease_id: str
    user_id: str
    provider: str
    model: str
    lane: Lane
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class ChargeRef:
    """Everything needed to refund a generation's unit; ``month`` is the one charged,
    ``credit_id`` the credit that paid it ("" = the monthly pool)."""

    generation_id: str
    user_id: str
    month: str
    scope: Scope
    credit_id: str = ""


@dataclass(frozen=True, slots=True)
class StatusNote:
    """A generation's new status for its event streams, written by the lease script call
    it rides on (``Keys.generation_status``, kept ``ttl_ms``) instead of a ``SET`` of its
    own. Built by ``StatusBoard.note``; events.py says when it may be written."""

    generation_id: str
    status: str
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class Meter:
    """A used/limit pair; ``limit`` is ``UNLIMITED`` (-1) when there is no cap."""

    used: int
    limit: int
    resets_at: datetime | None = None

    @property
    def remaining(self) -> int:
        """Units left (0 when over); -1 for unlimited."""
        return -1 if self.limit < 0 else max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class IdempotencyRef:
    """The Idempotency-Key an admission marked pending (dropped again by ``abort``)."""

    user_id: str
    scope: str
    key: str
    fingerprint: str
