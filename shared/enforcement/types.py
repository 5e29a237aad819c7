"""Values that cross the enforcement boundary: requests, outcomes and the two data ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol, TypeAlias

from shared.plans import Lane, PlanName

__all__ = [
    "Admission",
    "AdmissionKind",
    "AdmissionRequest",
    "AdmissionTicket",
    "Admitted",
    "ChargeRef",
    "CooldownResult",
    "CounterResult",
    "CreditBalance",
    "IdempotencyKind",
    "IdempotencyRef",
    "IdempotencyState",
    "InProgress",
    "KeyReused",
    "LeaseRef",
    "LeaseStatus",
    "Meter",
    "PlanInfo",
    "PlanSource",
    "Refusal",
    "RefusalCode",
    "Refused",
    "Replay",
    "Scope",
    "SemaphoreResult",
    "StatusNote",
    "StoredResponse",
    "Truth",
    "TruthSource",
    "UsageSnapshot",
    "UsageSource",
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
class PlanInfo:
    """A user's subscription as Postgres knows it."""

    base_plan: PlanName | None
    boost_expires_at: datetime | None = None


class PlanSource(Protocol):
    def load_plan(self, user_id: str) -> PlanInfo:
        """The user's base plan and boost expiry (Postgres)."""
        ...


@dataclass(frozen=True, slots=True)
class Truth:
    """What Postgres knows that Redis is missing: the plan (None when not asked for)
    and the counts asked for (None otherwise)."""

    plan: PlanInfo | None = None
    month: int | None = None
    hour: int | None = None
    full: int | None = None
    credits: str | None = None  # the credits seed (see lua/lib/credits.lua), "-" for none


class TruthSource(Protocol):
    def load_truth(
        self, user_id: str, now: datetime, *, plan: bool, counters: frozenset[str]
    ) -> Truth:
        """The plan (if ``plan``) and the counts named in ``counters`` ('month', 'hour',
        'full', 'credits'), read together: a user's first request of a period pays one read."""
        ...


class UsageSource(Protocol):
    """The usage ledger (Postgres): counts that seed missing Redis counters."""

    def count_month(self, user_id: str, month: str) -> int:
        """Charged (non-failed) generations in month ``YYYY-MM``."""
        ...

    def count_hour(self, user_id: str, hour: str) -> int:
        """Charged generations in hour ``YYYYMMDDHH``."""
        ...

    def count_full_regens(self, user_id: str, month: str) -> int:
        """Charged full regenerations in month ``YYYY-MM``."""
        ...

    def credits_seed(self, user_id: str) -> str:
        """The user's credits as ``lua/lib/credits.lua`` seeds them ("-" for none)."""
        ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept for idempotent replay, byte-for-byte."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionRequest:
    """One create/regenerate asking to be admitted. ``now`` only picks the period keys."""

    user_id: str
    scope: Scope
    lease_id: str
    now: datetime
    provider: str
    model: str
    lane: Lane = Lane.INTERACTIVE
    variants: int = 1
    draft_id: str | None = None
    idem_key: str | None = None
    fingerprint: str | None = None


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


@dataclass(frozen=True, slots=True)
class AdmissionTicket:
    """An admitted request: what to release, what to refund, and the usage it saw."""

    lease: LeaseRef
    charge: ChargeRef
    plan: PlanName
    monthly: Meter
    hourly: Meter
    lease_expires_at: datetime
    idempotency: IdempotencyRef | None = None
    draft_id: str | None = None  # a regeneration's draft: its cooldown is undone by abort
    hour: str | None = None  # YYYYMMDDHH charged: abort gives the hourly unit back (SPEC §9)
    credits_left: int | None = None  # units left in credits after a credit paid; None: pool
    # Usage thresholds this very unit crossed (decided in the admission call): pool_<pct>,
    # credits_low. The caller writes them to the notice outbox with the generation.
    notices: tuple[str, ...] = ()

    @property
    def credit_id(self) -> str | None:
        """The credit (pack or grant) that paid; None when the monthly pool did."""
        return self.charge.credit_id or None


class RefusalCode(StrEnum):
    """Every reason the Lua scripts give for a refusal: the SPEC §4 error codes they
    return verbatim (a test checks each spelling in ``lua/`` against this list)."""

    SUBSCRIPTION_REQUIRED = "SUBSCRIPTION_REQUIRED"
    PLAN_FEATURE_UNAVAILABLE = "PLAN_FEATURE_UNAVAILABLE"
    MONTHLY_QUOTA_EXCEEDED = "MONTHLY_QUOTA_EXCEEDED"
    HOURLY_LIMIT_EXCEEDED = "HOURLY_LIMIT_EXCEEDED"
    FULL_REGEN_CAP_EXCEEDED = "FULL_REGEN_CAP_EXCEEDED"
    COOLDOWN_ACTIVE = "COOLDOWN_ACTIVE"
    CONCURRENCY_LIMIT = "CONCURRENCY_LIMIT"
    PROVIDER_BUSY = "PROVIDER_BUSY"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not admitted (a SPEC error code and its details)."""

    code: RefusalCode
    limit: int | None = None
    used: int | None = None
    resets_at: datetime | None = None
    retry_after_s: int | None = None


class AdmissionKind(StrEnum):
    ADMITTED = "admitted"
    REFUSED = "refused"
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    KEY_REUSED = "key_reused"


@dataclass(frozen=True, slots=True)
class Admitted:
    """Admitted: the ticket that finishes or aborts the job."""

    kind: ClassVar[AdmissionKind] = AdmissionKind.ADMITTED
    ticket: AdmissionTicket


@dataclass(frozen=True, slots=True)
class Refused:
    """Refused, nothing consumed."""

    kind: ClassVar[AdmissionKind] = AdmissionKind.REFUSED
    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Replay:
    """The Idempotency-Key's first response, to send again."""

    kind: ClassVar[AdmissionKind] = AdmissionKind.REPLAY
    replay: StoredResponse


@dataclass(frozen=True, slots=True)
class InProgress:
    """The Idempotency-Key's first request is still running."""

    kind: ClassVar[AdmissionKind] = AdmissionKind.IN_PROGRESS


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The Idempotency-Key was used with another request body."""

    kind: ClassVar[AdmissionKind] = AdmissionKind.KEY_REUSED


Admission: TypeAlias = Admitted | Refused | Replay | InProgress | KeyReused
"""The outcome of ``Enforcer.admit``: match on the type (``kind`` names it too)."""


class IdempotencyKind(StrEnum):
    NEW = "new"
    REPLAY = "replay"
    IN_PROGRESS = "in_progress"
    KEY_REUSED = "key_reused"


@dataclass(frozen=True, slots=True)
class IdempotencyState:
    """The state of an Idempotency-Key; ``replay`` is set for ``REPLAY``."""

    kind: IdempotencyKind
    replay: StoredResponse | None = None


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """``held`` (extended), ``reacquired`` (had expired, taken again), ``busy``,
    ``superseded`` (a newer claim owns it) or ``replayed`` (the delivery's token was used
    before: nothing written)."""

    state: str
    expires_at: datetime | None = None
    code: RefusalCode | None = None
    retry_after_s: int | None = None

    @property
    def ok(self) -> bool:
        """True when the job may run."""
        return self.state in ("held", "reacquired")

    @property
    def superseded(self) -> bool:
        """A newer claim of the same job owns the lease (this delivery was taken over)."""
        return self.state == "superseded"

    @property
    def replayed(self) -> bool:
        """The signed delivery's token was presented before: refuse it (401)."""
        return self.state == "replayed"


@dataclass(frozen=True, slots=True)
class CreditBalance:
    """One pack or grant as the admission sees it (``limit`` = units still granted)."""

    credit_id: str
    kind: str
    expires_at: datetime
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """GET /v1/usage: the caller's month, hour, full regens and concurrency."""

    plan: PlanName | None
    effective_plan: PlanName | None
    boost_expires_at: datetime | None
    period: str
    generations: Meter
    hourly: Meter
    full_regens: Meter
    concurrency: Meter
    credits: tuple[CreditBalance, ...] = ()  # unexpired, earliest expiry first


@dataclass(frozen=True, slots=True)
class CounterResult:
    """A thin counter check: ``allowed`` and the counter after it."""

    allowed: bool
    used: int
    limit: int
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class SemaphoreResult:
    """A thin semaphore acquire."""

    acquired: bool
    in_use: int
    limit: int
    retry_after_s: int | None = None


@dataclass(frozen=True, slots=True)
class CooldownResult:
    """A thin cooldown check-and-set."""

    allowed: bool
    retry_after_s: int | None = None
