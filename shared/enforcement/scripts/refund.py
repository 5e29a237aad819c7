"""``lua/refund.lua``: give a generation's unit back once, to the pool or the credit that
paid it (and the full-regen cap). KEYS, ARGV and the reply (refunded by this call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.enforcement.scripts.common import ScriptSlots, refund_marker_expireat_s, wire
from shared.enforcement.values import ChargeRef, Scope
from shared.redis.keys import Keys, month_key_from_label

__all__ = ["SCRIPT", "RefundArgs", "RefundKeys", "parse_refund", "refund_args", "refund_keys"]


@dataclass(frozen=True, slots=True)
class RefundKeys:
    refund_marker: str
    monthly_counter: str
    full_regen_counter: str
    credits: str


@dataclass(frozen=True, slots=True)
class RefundArgs:
    marker_expireat_s: str
    full_regen: str
    credit_id: str


SCRIPT = ScriptSlots("refund", RefundKeys, RefundArgs)


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


def parse_refund(reply: Any) -> bool:
    """True when this call refunded (1), False when already refunded (0)."""
    return bool(int(reply))
