"""Being limited is a value inside enforcement and an exception at the service boundary.

``enforce_or_throw`` turns an ``Admission`` into the ticket (or the replay to render) or
raises the one ``shared.errors`` exception its SPEC code calls for.
"""

from __future__ import annotations

from typing import Any, assert_never

from shared.enforcement.types import (
    Admission,
    AdmissionTicket,
    Admitted,
    IdempotencyKind,
    IdempotencyState,
    InProgress,
    KeyReused,
    LeaseStatus,
    Refusal,
    RefusalCode,
    Refused,
    Replay,
    StoredResponse,
)
from shared.errors import (
    AppError,
    Conflict,
    IdempotencyKeyReused,
    InternalError,
    LimitExceeded,
    PlanFeatureUnavailable,
    ServiceUnavailable,
    SubscriptionRequired,
)

__all__ = ["enforce_idempotency", "enforce_lease", "enforce_or_throw", "refusal_error"]

_MESSAGES: dict[RefusalCode, str] = {
    RefusalCode.MONTHLY_QUOTA_EXCEEDED: "Monthly generation quota reached.",
    RefusalCode.HOURLY_LIMIT_EXCEEDED: "Hourly generation limit reached; try again later.",
    RefusalCode.FULL_REGEN_CAP_EXCEEDED: "Monthly full-regeneration cap reached.",
    RefusalCode.COOLDOWN_ACTIVE: "This draft was regenerated moments ago; wait for the cooldown.",
    RefusalCode.CONCURRENCY_LIMIT: "Too many generations running; wait for one to finish.",
    RefusalCode.PROVIDER_BUSY: "The AI provider is at capacity; retry shortly.",
}


def _details(refusal: Refusal) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if refusal.limit is not None:
        details["limit"] = refusal.limit
    if refusal.used is not None:
        details["used"] = refusal.used
    if refusal.resets_at is not None:
        details["resets_at"] = refusal.resets_at.isoformat().replace("+00:00", "Z")
    return details


def refusal_error(refusal: Refusal) -> AppError:
    """The exception for ``refusal``'s SPEC code, with details and Retry-After."""
    code, details = refusal.code, _details(refusal)
    if code == RefusalCode.SUBSCRIPTION_REQUIRED:
        return SubscriptionRequired()
    if code == RefusalCode.PLAN_FEATURE_UNAVAILABLE:
        return PlanFeatureUnavailable(details=details)
    message = _MESSAGES.get(code)
    if message is None:
        return InternalError(f"unknown refusal code {code}")
    cls = ServiceUnavailable if code == RefusalCode.PROVIDER_BUSY else LimitExceeded
    return cls(message, code=code, details=details, retry_after=refusal.retry_after_s)


def enforce_or_throw(admission: Admission) -> AdmissionTicket | StoredResponse:
    """The ticket of an admitted request, or the stored response of a replay; else raises."""
    match admission:
        case Admitted(ticket=ticket):
            return ticket
        case Replay(replay=stored):
            return stored
        case Refused(refusal=refusal):
            raise refusal_error(refusal)
        case InProgress():
            raise Conflict(code="IDEMPOTENCY_IN_PROGRESS")
        case KeyReused():
            raise IdempotencyKeyReused()
    assert_never(admission)


def enforce_idempotency(state: IdempotencyState) -> StoredResponse | None:
    """``None`` to proceed (a new key), the stored response to replay; else raises 409/422."""
    if state.kind is IdempotencyKind.NEW:
        return None
    if state.kind is IdempotencyKind.REPLAY and state.replay is not None:
        return state.replay
    if state.kind is IdempotencyKind.IN_PROGRESS:
        raise Conflict(code="IDEMPOTENCY_IN_PROGRESS")
    raise IdempotencyKeyReused()


def enforce_lease(status: LeaseStatus) -> LeaseStatus:
    """``status`` when the job may run; a 503 with Retry-After when its slots are taken."""
    if status.ok:
        return status
    busy = status.code == RefusalCode.PROVIDER_BUSY
    code = RefusalCode.PROVIDER_BUSY.value if busy else "SERVICE_UNAVAILABLE"
    raise ServiceUnavailable(code=code, retry_after=status.retry_after_s)
