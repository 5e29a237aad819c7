"""``lua/admission.lua``: one atomic admission decision (DESIGN §2) — its request, KEYS,
ARGV (with the plan table, by name), reply types, parser, and the error a refusal becomes
at the service boundary (``enforce_or_throw``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, TypeAlias, assert_never

from shared.enforcement.ports import Truth
from shared.enforcement.scripts.common import (
    CONCURRENCY_RETRY_AFTER_S,
    AdmitConfig,
    Need,
    PlanFill,
    ScriptSlots,
    from_epoch_ms,
    hour_expireat_s,
    month_expireat_s,
    opt,
    parse_need,
    parse_stored,
    wire,
)
from shared.enforcement.values import (
    ChargeRef,
    IdempotencyRef,
    LeaseRef,
    Meter,
    Scope,
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
from shared.plans import LOW_CREDIT_MARK, NOTICE_POOL_PERCENTS, PLANS, Lane, Plan, PlanName
from shared.redis.keys import (
    Keys,
    hour_end,
    hour_label,
    month_end,
    month_label,
    seconds_until_hour_end,
    seconds_until_month_end,
)

__all__ = [
    "SCRIPT",
    "Admission",
    "AdmissionArgs",
    "AdmissionKeys",
    "AdmissionKind",
    "AdmissionRequest",
    "AdmissionTicket",
    "Admitted",
    "InProgress",
    "KeyReused",
    "Refusal",
    "RefusalCode",
    "Refused",
    "Replay",
    "admission_args",
    "admission_keys",
    "enforce_or_throw",
    "parse_admission",
    "plan_table",
    "refusal_error",
    "refusal_for",
]


# ---- the request ---------------------------------------------------------------------------


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


# ---- KEYS and ARGV -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdmissionKeys:
    idempotency_record: str
    plan_cache_base: str
    plan_cache_boost: str
    monthly_counter: str
    hourly_counter: str
    full_regen_counter: str
    regen_cooldown: str
    user_semaphore: str
    provider_semaphore: str
    lease_record: str
    credits: str


@dataclass(frozen=True, slots=True)
class AdmissionArgs:
    time_offset_ms: str
    scope: str
    lease_id: str
    variants_requested: str
    request_fingerprint: str
    plan_table: str
    plan_fill: str
    boost_fill: str
    plan_cache_ttl_s: str
    monthly_seed: str
    hourly_seed: str
    full_seed: str
    monthly_counters_expireat_s: str
    hourly_counter_expireat_s: str
    lease_ttl_ms: str
    provider_cap: str
    idempotency_record_ttl_s: str
    credits_seed: str
    notice_marks: str
    low_credit_mark: str


SCRIPT = ScriptSlots("admission", AdmissionKeys, AdmissionArgs)


def plan_limits(plans: Mapping[PlanName, Plan] = PLANS) -> dict[str, dict[str, int | bool]]:
    """Each plan's limits by name, as admission.lua reads them (``plan.monthly`` …)."""
    return {
        plan.name.value: {
            "monthly": plan.generations_per_month,
            "hourly": plan.generations_per_hour,
            "max_variants": plan.max_variants,
            "full_allowed": plan.full_regen_allowed,
            "full_cap": plan.full_regens_per_month,
            "concurrency": plan.concurrent_jobs,
            "cooldown_ms": plan.regen_cooldown_s * 1000,
        }
        for plan in plans.values()
    }


def _lua_value(value: int | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def plan_table(plans: Mapping[PlanName, Plan] = PLANS) -> str:
    """The plan table as ``lua/lib/plans.lua`` reads it: each plan by name, each limit by
    name, ``basic{monthly=60,hourly=10,…};standard{…}`` (integers, ``true``/``false``;
    numbers only from plans.py). Read with Lua's core string functions, so it needs no
    library a Redis-compatible server might lack."""
    return ";".join(
        name + "{" + ",".join(f"{k}={_lua_value(v)}" for k, v in limits.items()) + "}"
        for name, limits in plan_limits(plans).items()
    )


_PLAN = re.compile(r"([A-Za-z0-9_]+)\{([^}]*)\}")
_LIMIT = re.compile(r"([A-Za-z0-9_]+)=([^,]+)")


def read_plan_table(text: str) -> dict[str, dict[str, int | bool]]:
    """``plan_table``'s text read back as ``lib/plans.lua`` reads it (for tests and tools)."""

    def value(raw: str) -> int | bool:
        return raw == "true" if raw in ("true", "false") else int(raw)

    return {
        name: {key: value(raw) for key, raw in _LIMIT.findall(body)}
        for name, body in _PLAN.findall(text)
    }


def admission_keys(keys: Keys, req: AdmissionRequest) -> list[str]:
    """KEYS of ``admission.lua`` (every key it may touch, for Upstash key locking)."""
    month, hour, full = keys.month_counters(req.user_id, req.now)
    slots = AdmissionKeys(
        idempotency_record=keys.idem(req.user_id, req.scope.endpoint, req.idem_key or ""),
        plan_cache_base=keys.plan_effective(req.user_id),
        plan_cache_boost=keys.boost_until(req.user_id),
        monthly_counter=month,
        hourly_counter=hour,
        full_regen_counter=full,
        regen_cooldown=keys.regen_cooldown(req.user_id, req.draft_id or "-"),
        user_semaphore=keys.user_leases(req.user_id),
        provider_semaphore=keys.provider(req.provider, req.model, req.lane.value),
        lease_record=keys.lease(req.lease_id),
        credits=keys.credits(req.user_id),
    )
    return wire(slots)


def admission_args(
    req: AdmissionRequest, cfg: AdmitConfig, fill: PlanFill | None, seeds: Truth | None
) -> list[str]:
    """ARGV of ``admission.lua``; ``fill``/``seeds`` only on the retry after a NEED reply."""
    seeds = seeds or Truth()
    plan_fill, boost_fill = PlanFill.args(fill)
    slots = AdmissionArgs(
        time_offset_ms=str(cfg.time_offset_ms),
        scope=req.scope.value,
        lease_id=req.lease_id,
        variants_requested=str(req.variants),
        request_fingerprint=(req.fingerprint or "") if req.idem_key else "",
        plan_table=cfg.plan_table,
        plan_fill=plan_fill,
        boost_fill=boost_fill,
        plan_cache_ttl_s=str(cfg.plan_cache_ttl_s),
        monthly_seed=opt(seeds.month),
        hourly_seed=opt(seeds.hour),
        full_seed=opt(seeds.full),
        monthly_counters_expireat_s=str(month_expireat_s(req.now)),
        hourly_counter_expireat_s=str(hour_expireat_s(req.now)),
        lease_ttl_ms=str(cfg.lease_ttl_ms),
        provider_cap=str(cfg.provider_cap),
        idempotency_record_ttl_s=str(cfg.idempotency_ttl_s),
        credits_seed=seeds.credits or "",
        notice_marks=",".join(str(p) for p in NOTICE_POOL_PERCENTS),
        low_credit_mark=str(LOW_CREDIT_MARK),
    )
    return wire(slots)


# ---- the reply -----------------------------------------------------------------------------


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


def _ceil_s(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


def refusal_for(
    code: RefusalCode, limit: int, used: int, retry_after_ms: int, now: datetime
) -> Refusal:
    """A ``Refusal`` with the SPEC details of ``code``, periods taken from ``now``."""
    if code in (RefusalCode.MONTHLY_QUOTA_EXCEEDED, RefusalCode.FULL_REGEN_CAP_EXCEEDED):
        return Refusal(code, limit, used, month_end(now), seconds_until_month_end(now))
    if code == RefusalCode.HOURLY_LIMIT_EXCEEDED:
        return Refusal(code, limit, used, hour_end(now), seconds_until_hour_end(now))
    if code == RefusalCode.COOLDOWN_ACTIVE:
        wait_s = _ceil_s(retry_after_ms)
        return Refusal(code, _ceil_s(limit), None, now + timedelta(seconds=wait_s), wait_s)
    if code in (RefusalCode.CONCURRENCY_LIMIT, RefusalCode.PROVIDER_BUSY):
        return Refusal(code, limit, used, None, CONCURRENCY_RETRY_AFTER_S)
    if code == RefusalCode.PLAN_FEATURE_UNAVAILABLE and limit > 0:
        return Refusal(code, limit, used)
    return Refusal(code)


def _source(reply: Sequence[Any]) -> tuple[str, int | None]:
    """(credit id or "" for the pool, credits left after a credit paid or None)."""
    source, left = str(reply[10]), int(reply[11])
    if source == "pool":
        return "", None
    return source, left if left >= 0 else None


def _notices(reply: Sequence[Any]) -> tuple[str, ...]:
    """The thresholds this admission crossed (``pool_80``, ``pool_100``, ``credits_low``)."""
    return tuple(part for part in str(reply[12]).split(",") if part)


def _ticket(reply: Sequence[Any], req: AdmissionRequest) -> AdmissionTicket:
    lease = LeaseRef(req.lease_id, req.user_id, req.provider, req.model, req.lane)
    credit_id, credits_left = _source(reply)
    charge = ChargeRef(req.lease_id, req.user_id, month_label(req.now), req.scope, credit_id)
    idem = None
    if req.idem_key:
        idem = IdempotencyRef(req.user_id, req.scope.endpoint, req.idem_key, req.fingerprint or "")
    return AdmissionTicket(
        lease=lease,
        charge=charge,
        plan=PlanName(reply[1]),
        monthly=Meter(int(reply[2]), int(reply[3]), month_end(req.now)),
        hourly=Meter(int(reply[4]), int(reply[5]), hour_end(req.now)),
        lease_expires_at=from_epoch_ms(int(reply[8])),
        idempotency=idem,
        draft_id=req.draft_id if req.scope is not Scope.CREATE else None,
        hour=hour_label(req.now),
        credits_left=credits_left,
        notices=_notices(reply),
    )


# The fewest values each admission reply carries (``_ticket`` reads up to reply[12]).
_MIN_REPLY = {
    AdmissionKind.ADMITTED: 13,
    AdmissionKind.REFUSED: 5,
    AdmissionKind.REPLAY: 4,
    AdmissionKind.IN_PROGRESS: 1,
    AdmissionKind.KEY_REUSED: 1,
}


def parse_admission(reply: Sequence[Any], req: AdmissionRequest) -> Admission | Need:
    """The typed outcome of an ``admission.lua`` reply."""
    need = parse_need(reply)
    if need is not None:
        return need
    kind = AdmissionKind(str(reply[0]))
    if len(reply) < _MIN_REPLY[kind]:
        raise ValueError(f"malformed admission reply {list(reply)!r}")
    match kind:
        case AdmissionKind.ADMITTED:
            return Admitted(_ticket(reply, req))
        case AdmissionKind.REFUSED:
            code = RefusalCode(str(reply[1]))
            return Refused(refusal_for(code, int(reply[2]), int(reply[3]), int(reply[4]), req.now))
        case AdmissionKind.REPLAY:
            return Replay(parse_stored(reply))
        case AdmissionKind.IN_PROGRESS:
            return InProgress()
        case AdmissionKind.KEY_REUSED:
            return KeyReused()
    assert_never(kind)


# ---- at the service boundary: being limited becomes the SPEC error -------------------------

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
            raise Conflict()  # its code is IDEMPOTENCY_IN_PROGRESS
        case KeyReused():
            raise IdempotencyKeyReused()
    assert_never(admission)
