"""``lua/semaphore_acquire.lua``: take one slot of a lease semaphore, or refuse and change
nothing (the seed's wrappers, and a fallback provider's in-flight slots). KEYS, ARGV, the
reply type and its parser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.enforcement.scripts.common import ScriptSlots, wire

__all__ = [
    "SCRIPT",
    "SemaphoreAcquireArgs",
    "SemaphoreAcquireKeys",
    "SemaphoreResult",
    "parse_semaphore_acquire",
    "semaphore_acquire_args",
    "semaphore_acquire_keys",
]


@dataclass(frozen=True, slots=True)
class SemaphoreAcquireKeys:
    semaphore: str


@dataclass(frozen=True, slots=True)
class SemaphoreAcquireArgs:
    time_offset_ms: str
    lease_id: str
    limit: str
    lease_ttl_ms: str


SCRIPT = ScriptSlots("semaphore_acquire", SemaphoreAcquireKeys, SemaphoreAcquireArgs)


def semaphore_acquire_keys(semaphore_key: str) -> list[str]:
    """KEYS of ``semaphore_acquire.lua`` (``Keys.user_leases`` or ``Keys.provider``)."""
    return wire(SemaphoreAcquireKeys(semaphore=semaphore_key))


def semaphore_acquire_args(
    lease_id: str, limit: int, *, time_offset_ms: int, lease_ttl_ms: int
) -> list[str]:
    """ARGV of ``semaphore_acquire.lua``."""
    slots = SemaphoreAcquireArgs(
        time_offset_ms=str(time_offset_ms),
        lease_id=lease_id,
        limit=str(limit),
        lease_ttl_ms=str(lease_ttl_ms),
    )
    return wire(slots)


@dataclass(frozen=True, slots=True)
class SemaphoreResult:
    """A thin semaphore acquire."""

    acquired: bool
    in_use: int
    limit: int
    retry_after_s: int | None = None


def parse_semaphore_acquire(reply: Sequence[Any], limit: int) -> SemaphoreResult:
    """``{1, in_use_after, expires_ms}`` | ``{0, in_use, retry_after_ms}``."""
    if int(reply[0]) == 1:
        return SemaphoreResult(True, int(reply[1]), limit)
    return SemaphoreResult(False, int(reply[1]), limit, max(1, -(-int(reply[2]) // 1000)))
