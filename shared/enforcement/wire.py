"""Pure argument builders and reply parsers for the enforcement scripts (no I/O).

Each ``*_keys`` / ``*_args`` pair fills its script's dataclasses in ``contract.py`` by
name (their field order is the header's slot order); each ``parse_*`` turns a reply
(numbers and strings only) into a typed value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never

from shared.enforcement.contract import (
    AdmissionArgs,
    AdmissionKeys,
    FinishArgs,
    FinishKeys,
    RefundArgs,
    RefundKeys,
    UsageArgs,
    UsageKeys,
    wire,
)
from shared.enforcement.types import (
    Admission,
    AdmissionKind,
    AdmissionRequest,
    AdmissionTicket,
    Admitted,
    ChargeRef,
    CreditBalance,
    IdempotencyKind,
    IdempotencyRef,
    IdempotencyState,
    InProgress,
    KeyReused,
    LeaseRef,
    LeaseStatus,
    Meter,
    PlanInfo,
    Refusal,
    RefusalCode,
    Refused,
    Replay,
    Scope,
    StatusNote,
    StoredResponse,
    UsageSnapshot,
)
from shared.plans import (
    LOW_CREDIT_MARK,
    NOTICE_POOL_PERCENTS,
    PLANS,
    Plan,
    PlanName,
)
from shared.redis.keys import (
    Keys,
    hour_end,
    hour_label,
    month_end,
    month_key_from_label,
    month_label,
    seconds_until_hour_end,
    seconds_until_month_end,
)

__all__ = [
    "CONCURRENCY_RETRY_AFTER_S",
    "PERIOD_GRACE_S",
    "AdmitConfig",
    "Need",
    "PlanFill",
    "Seeds",
    "admission_args",
    "admission_keys",
    "epoch_ms",
    "fence_arg",
    "finish_args",
    "finish_keys",
    "from_epoch_ms",
    "hour_expireat_s",
    "lease_sem_keys",
    "month_expireat_s",
    "parse_admission",
    "parse_credits",
    "parse_idempotency",
    "parse_need",
    "parse_refresh",
    "parse_usage",
    "plan_table",
    "refund_args",
    "refund_keys",
    "refund_marker_expireat_s",
    "refusal_for",
    "status_key",
    "usage_args",
    "usage_keys",
]

PERIOD_GRACE_S = 86_400
"""SPEC §2: counters outlive their period by a day, so a late refund still finds them."""

CONCURRENCY_RETRY_AFTER_S = 5
"""A slot frees when a job ends (seconds to tens of seconds): polling again soon is cheap."""


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(dt.timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    """UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def month_expireat_s(now: datetime) -> int:
    """EXPIREAT of the monthly counters of ``now``'s month: its end plus grace."""
    return int(month_end(now).timestamp()) + PERIOD_GRACE_S


def hour_expireat_s(now: datetime) -> int:
    """EXPIREAT of the hourly counter of ``now``'s hour: its end plus grace."""
    return int(hour_end(now).timestamp()) + PERIOD_GRACE_S


def refund_marker_expireat_s(month: str) -> int:
    """The marker outlives the charged month's counters, so a refund never repeats."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    return month_expireat_s(start) + PERIOD_GRACE_S


def _plan_row(plan: Plan) -> str:
    fields = (
        plan.generations_per_month,
        plan.generations_per_hour,
        plan.max_variants,
        int(plan.full_regen_allowed),
        plan.full_regens_per_month,
        plan.concurrent_jobs,
        plan.regen_cooldown_s * 1000,
    )
    return ":".join([plan.name.value, *map(str, fields)])


def plan_table(plans: Mapping[PlanName, Plan] = PLANS) -> str:
    """The plan table as ``lua/lib/plans.lua`` parses it (numbers only from plans.py)."""
    return ";".join(_plan_row(p) for p in plans.values())


@dataclass(frozen=True, slots=True)
class PlanFill:
    """Plan-cache values to write: base plan (``none``) and boost expiry ms (0 = none)."""

    base_plan: str
    boost_until_ms: int

    @classmethod
    def of(cls, info: PlanInfo) -> PlanFill:
        """The cache form of ``info``."""
        boost = epoch_ms(info.boost_expires_at) if info.boost_expires_at else 0
        return cls(info.base_plan.value if info.base_plan else "none", boost)


@dataclass(frozen=True, slots=True)
class Seeds:
    """Counter values counted in Postgres for counters Redis is missing."""

    month: int | None = None
    hour: int | None = None
    full: int | None = None
    credits: str | None = None


@dataclass(frozen=True, slots=True)
class Need:
    """The script needs the plan and/or counter seeds before it can decide."""

    plan: bool
    counters: frozenset[str]


@dataclass(frozen=True, slots=True)
class AdmitConfig:
    """The deployment's numbers every admission passes along."""

    plan_table: str
    plan_cache_ttl_s: int
    lease_ttl_ms: int
    provider_cap: int
    idempotency_ttl_s: int
    time_offset_ms: int = 0


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _fill_args(fill: PlanFill | None) -> tuple[str, str]:
    return ("", "") if fill is None else (fill.base_plan, str(fill.boost_until_ms))


def _idem_key(keys: Keys, req: AdmissionRequest) -> str:
    return keys.idem(req.user_id, req.scope.endpoint, req.idem_key or "")


def admission_keys(keys: Keys, req: AdmissionRequest) -> list[str]:
    """KEYS of ``admission.lua`` (every key it may touch, for Upstash key locking)."""
    month, hour, full = keys.month_counters(req.user_id, req.now)
    slots = AdmissionKeys(
        idempotency_record=_idem_key(keys, req),
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
    req: AdmissionRequest, cfg: AdmitConfig, fill: PlanFill | None, seeds: Seeds | None
) -> list[str]:
    """ARGV of ``admission.lua``; ``fill``/``seeds`` only on the retry after a NEED reply."""
    seeds = seeds or Seeds()
    plan_fill, boost_fill = _fill_args(fill)
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
        monthly_seed=_opt(seeds.month),
        hourly_seed=_opt(seeds.hour),
        full_seed=_opt(seeds.full),
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


def parse_need(reply: Sequence[Any]) -> Need | None:
    """A ``need_plan`` / ``need_seed`` reply as a ``Need``; ``None`` for anything else."""
    if reply[0] not in ("need_plan", "need_seed"):
        return None
    missing = frozenset(part for part in str(reply[1]).split(",") if part)
    return Need(plan=reply[0] == "need_plan", counters=missing)


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
    source = str(reply[10]) if len(reply) > 10 else "pool"
    left = int(reply[11]) if len(reply) > 11 else -1
    if source == "pool":
        return "", None
    return source, left if left >= 0 else None


def _notices(reply: Sequence[Any]) -> tuple[str, ...]:
    """The thresholds this admission crossed (``pool_80``, ``pool_100``, ``credits_low``)."""
    raw = str(reply[12]) if len(reply) > 12 else ""
    return tuple(part for part in raw.split(",") if part)


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


def _stored(reply: Sequence[Any]) -> StoredResponse:
    headers = json.loads(str(reply[3]) or "{}")
    return StoredResponse(
        int(reply[1]), str(reply[2]), {str(k): str(v) for k, v in headers.items()}
    )


# The fewest values each admission reply carries (``_ticket`` reads up to reply[8]).
_MIN_REPLY = {
    AdmissionKind.ADMITTED: 9,
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
            return Replay(_stored(reply))
        case AdmissionKind.IN_PROGRESS:
            return InProgress()
        case AdmissionKind.KEY_REUSED:
            return KeyReused()
    assert_never(kind)


def parse_idempotency(reply: Sequence[Any]) -> IdempotencyState:
    """The typed reply of ``idem_begin.lua``."""
    kind = IdempotencyKind(str(reply[0]))
    replay = _stored(reply) if kind is IdempotencyKind.REPLAY else None
    return IdempotencyState(kind, replay)


def parse_refresh(reply: Sequence[Any]) -> LeaseStatus:
    """The typed reply of ``refresh_lease.lua``."""
    if reply[0] == "busy":
        code = RefusalCode(str(reply[1]))
        return LeaseStatus("busy", code=code, retry_after_s=CONCURRENCY_RETRY_AFTER_S)
    if reply[0] in ("superseded", "replayed"):
        return LeaseStatus(str(reply[0]))
    return LeaseStatus(str(reply[0]), expires_at=from_epoch_ms(int(reply[1])))


def usage_keys(keys: Keys, user_id: str, now: datetime) -> list[str]:
    """KEYS of ``usage.lua``."""
    month, hour, full = keys.month_counters(user_id, now)
    slots = UsageKeys(
        plan_cache_base=keys.plan_effective(user_id),
        plan_cache_boost=keys.boost_until(user_id),
        monthly_counter=month,
        hourly_counter=hour,
        full_regen_counter=full,
        user_semaphore=keys.user_leases(user_id),
        credits=keys.credits(user_id),
    )
    return wire(slots)


def usage_args(
    now: datetime, cfg: AdmitConfig, fill: PlanFill | None, seeds: Seeds | None
) -> list[str]:
    """ARGV of ``usage.lua``."""
    seeds = seeds or Seeds()
    plan_fill, boost_fill = _fill_args(fill)
    slots = UsageArgs(
        time_offset_ms=str(cfg.time_offset_ms),
        plan_fill=plan_fill,
        boost_fill=boost_fill,
        plan_cache_ttl_s=str(cfg.plan_cache_ttl_s),
        monthly_seed=_opt(seeds.month),
        hourly_seed=_opt(seeds.hour),
        full_seed=_opt(seeds.full),
        monthly_expireat_s=str(month_expireat_s(now)),
        hourly_expireat_s=str(hour_expireat_s(now)),
        credits_seed=seeds.credits or "",
    )
    return wire(slots)


def _plan_or_none(name: str) -> PlanName | None:
    return None if name == "none" else PlanName(name)


def parse_credits(encoded: str, now_ms: int) -> tuple[CreditBalance, ...]:
    """The credits of a ``credits_encode`` string not expired and not wholly taken back
    (limit 0), earliest expiry first."""
    out: list[CreditBalance] = []
    for part in encoded.split(";"):
        if not part:
            continue
        credit_id, exp, limit, used, kind = part.split(":")
        if int(exp) > now_ms and int(limit) > 0:
            out.append(
                CreditBalance(credit_id, kind, from_epoch_ms(int(exp)), int(limit), int(used))
            )
    return tuple(sorted(out, key=lambda c: (c.expires_at, c.credit_id)))


def parse_usage(reply: Sequence[Any], now: datetime) -> UsageSnapshot | Need:
    """The typed reply of ``usage.lua``; limits of the effective plan (0 without a plan)."""
    need = parse_need(reply)
    if need is not None:
        return need
    base, boost_ms, now_ms = _plan_or_none(str(reply[1])), int(reply[2]), int(reply[7])
    effective = PlanName.PRO if boost_ms > now_ms else base
    plan = PLANS.get(effective) if effective else None
    return UsageSnapshot(
        plan=base,
        effective_plan=effective,
        boost_expires_at=from_epoch_ms(boost_ms) if boost_ms > now_ms else None,
        period=month_label(now),
        generations=Meter(int(reply[3]), plan.generations_per_month if plan else 0, month_end(now)),
        hourly=Meter(int(reply[4]), plan.generations_per_hour if plan else 0, hour_end(now)),
        full_regens=Meter(int(reply[5]), plan.full_regens_per_month if plan else 0, month_end(now)),
        concurrency=Meter(int(reply[6]), plan.concurrent_jobs if plan else 0),
        credits=parse_credits(str(reply[8]) if len(reply) > 8 else "", now_ms),
    )


def lease_sem_keys(keys: Keys, lease: LeaseRef) -> list[str]:
    """The two semaphores a lease holds: the user's, then the provider's."""
    return [
        keys.user_leases(lease.user_id),
        keys.provider(lease.provider, lease.model, lease.lane.value),
    ]


def finish_keys(
    keys: Keys,
    lease: LeaseRef,
    charge: ChargeRef | None,
    idem: IdempotencyRef | None,
    draft_id: str | None = None,
    hour: str | None = None,
    note: StatusNote | None = None,
) -> list[str]:
    """KEYS of ``finish.lua`` (unused slots still name real keys of this user)."""
    month = month_key_from_label(charge.month) if charge else "000000"
    user = lease.user_id
    idem_key = keys.idem(user, idem.scope, idem.key) if idem else keys.idem(user, "-", "-")
    user_sem, provider_sem = lease_sem_keys(keys, lease)
    slots = FinishKeys(
        user_semaphore=user_sem,
        provider_semaphore=provider_sem,
        lease_record=keys.lease(lease.lease_id),
        refund_marker=keys.refund_marker(charge.generation_id if charge else lease.lease_id),
        monthly_counter=keys.gen_used(user, month),
        full_regen_counter=keys.full_regen_used(user, month),
        idempotency_record=idem_key,
        regen_cooldown=keys.regen_cooldown(user, draft_id or "-"),
        hourly_counter=keys.gen_hour(user, hour or "0000000000"),
        credits=keys.credits(user),
        generation_status=status_key(keys, lease, note),
    )
    return wire(slots)


def finish_args(
    lease: LeaseRef,
    charge: ChargeRef | None,
    idem: IdempotencyRef | None,
    draft_id: str | None = None,
    hour: str | None = None,
    note: StatusNote | None = None,
) -> list[str]:
    """ARGV of ``finish.lua``."""
    slots = FinishArgs(
        lease_id=lease.lease_id,
        refund="1" if charge else "0",
        full_regen="1" if charge and charge.scope is Scope.REGEN_FULL else "0",
        refund_marker_expireat_s=str(refund_marker_expireat_s(charge.month)) if charge else "0",
        fingerprint=idem.fingerprint if idem else "",
        clear_cooldown="1" if draft_id else "0",
        fence=fence_arg(lease),
        refund_hour="1" if charge and hour else "0",
        credit_id=charge.credit_id if charge else "",
        status=note.status if note else "",
        status_ttl_ms=str(note.ttl_ms) if note else "",
    )
    return wire(slots)


def status_key(keys: Keys, lease: LeaseRef, note: StatusNote | None) -> str:
    """The status slot of the lease scripts: the noted generation's key, or (nothing to
    publish, the script leaves it alone) the lease's own generation's."""
    return keys.generation_status(note.generation_id if note else lease.lease_id)


def fence_arg(lease: LeaseRef) -> str:
    """The claim-number argument of the lease scripts ("" = not fenced)."""
    return "" if lease.attempt is None else str(lease.attempt)


def refund_keys(keys: Keys, charge: ChargeRef) -> list[str]:
    """KEYS of ``refund.lua``."""
    month = month_key_from_label(charge.month)
    slots = RefundKeys(
        refund_marker=keys.refund_marker(charge.generation_id),
        monthly_counter=keys.gen_used(charge.user_id, month),
        full_regen_counter=keys.full_regen_used(charge.user_id, month),
        credits=keys.credits(charge.user_id),
    )
    return wire(slots)


def refund_args(charge: ChargeRef) -> list[str]:
    """ARGV of ``refund.lua``."""
    slots = RefundArgs(
        marker_expireat_s=str(refund_marker_expireat_s(charge.month)),
        full_regen="1" if charge.scope is Scope.REGEN_FULL else "0",
        credit_id=charge.credit_id,
    )
    return wire(slots)
