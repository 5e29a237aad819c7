"""``lua/finish.lua``: end a job — refund once, release both leases, and for an abort the
hourly unit, the cooldown and the pending idempotency record; optionally publish the job's
terminal status. KEYS, ARGV and the reply (refunded or not)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.enforcement.scripts.common import (
    ScriptSlots,
    fence_arg,
    lease_sem_keys,
    refund_marker_expireat_s,
    status_key,
    wire,
)
from shared.enforcement.values import ChargeRef, IdempotencyRef, LeaseRef, Scope, StatusNote
from shared.redis.keys import Keys, month_key_from_label

__all__ = ["SCRIPT", "FinishArgs", "FinishKeys", "finish_args", "finish_keys", "parse_finish"]


@dataclass(frozen=True, slots=True)
class FinishKeys:
    user_semaphore: str
    provider_semaphore: str
    lease_record: str
    refund_marker: str
    monthly_counter: str
    full_regen_counter: str
    idempotency_record: str
    regen_cooldown: str
    hourly_counter: str
    credits: str
    generation_status: str


@dataclass(frozen=True, slots=True)
class FinishArgs:
    lease_id: str
    refund: str
    full_regen: str
    refund_marker_expireat_s: str
    fingerprint: str
    clear_cooldown: str
    fence: str
    refund_hour: str
    credit_id: str
    status: str
    status_ttl_ms: str


SCRIPT = ScriptSlots("finish", FinishKeys, FinishArgs)


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


def parse_finish(reply: Sequence[Any]) -> bool:
    """True when this call refunded the unit (``{refunded, released, dropped}``)."""
    return bool(int(reply[0]))
