"""``lua/credit_set.lua``: write one credit (pack or grant) into a cached credits hash;
its limit never drops below the units used. KEYS, ARGV and the reply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.enforcement.scripts.common import ScriptSlots, epoch_ms, wire
from shared.redis.keys import Keys

__all__ = [
    "SCRIPT",
    "CreditSetArgs",
    "CreditSetKeys",
    "credit_set_args",
    "credit_set_keys",
    "parse_credit_set",
]


@dataclass(frozen=True, slots=True)
class CreditSetKeys:
    credits: str


@dataclass(frozen=True, slots=True)
class CreditSetArgs:
    credit_id: str
    expires_ms: str
    limit_wanted: str
    kind: str


SCRIPT = ScriptSlots("credit_set", CreditSetKeys, CreditSetArgs)


def credit_set_keys(keys: Keys, user_id: str) -> list[str]:
    """KEYS of ``credit_set.lua``."""
    return wire(CreditSetKeys(credits=keys.credits(user_id)))


def credit_set_args(credit_id: str, kind: str, expires_at: datetime, limit: int) -> list[str]:
    """ARGV of ``credit_set.lua``."""
    slots = CreditSetArgs(
        credit_id=credit_id,
        expires_ms=str(epoch_ms(expires_at)),
        limit_wanted=str(limit),
        kind=kind,
    )
    return wire(slots)


def parse_credit_set(reply: Sequence[Any]) -> tuple[bool, int]:
    """(cached, used) of a ``{cached, limit written, used}`` reply."""
    return bool(int(reply[0])), int(reply[2])
