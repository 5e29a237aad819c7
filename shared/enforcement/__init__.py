"""Enforcement: plan limits, usage counters, leases and idempotency, decided in Redis.

``Enforcer`` is the service; ``enforce_or_throw`` is where being limited stops being a
value and becomes the SPEC error. ``wire`` holds the pure argument builders and reply
parsers behind each Lua script.
"""

from shared.enforcement.outcomes import (
    enforce_idempotency,
    enforce_lease,
    enforce_or_throw,
    refusal_error,
)
from shared.enforcement.service import Enforcer
from shared.enforcement.types import (
    Admission,
    AdmissionKind,
    AdmissionRequest,
    AdmissionTicket,
    ChargeRef,
    CooldownResult,
    CounterResult,
    IdempotencyKind,
    IdempotencyRef,
    IdempotencyState,
    LeaseRef,
    LeaseStatus,
    Meter,
    PlanInfo,
    PlanSource,
    Refusal,
    RefusalCode,
    Scope,
    SemaphoreResult,
    StoredResponse,
    Truth,
    TruthSource,
    UsageSnapshot,
    UsageSource,
)

__all__ = [
    "Admission",
    "AdmissionKind",
    "AdmissionRequest",
    "AdmissionTicket",
    "ChargeRef",
    "CooldownResult",
    "CounterResult",
    "Enforcer",
    "IdempotencyKind",
    "IdempotencyRef",
    "IdempotencyState",
    "LeaseRef",
    "LeaseStatus",
    "Meter",
    "PlanInfo",
    "PlanSource",
    "Refusal",
    "RefusalCode",
    "Scope",
    "SemaphoreResult",
    "StoredResponse",
    "Truth",
    "TruthSource",
    "UsageSnapshot",
    "UsageSource",
    "enforce_idempotency",
    "enforce_lease",
    "enforce_or_throw",
    "refusal_error",
]
