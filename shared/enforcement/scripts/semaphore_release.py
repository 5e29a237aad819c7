"""``lua/semaphore_release.lua``: remove a lease from its semaphores and drop its record
(fenced like ``finish``). KEYS, ARGV and the reply (members removed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.enforcement.scripts.common import ScriptSlots, wire

__all__ = [
    "SCRIPT",
    "SemaphoreReleaseArgs",
    "SemaphoreReleaseKeys",
    "parse_semaphore_release",
    "semaphore_release_args",
    "semaphore_release_keys",
]


@dataclass(frozen=True, slots=True)
class SemaphoreReleaseKeys:
    lease_record: str
    semaphores: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SemaphoreReleaseArgs:
    lease_id: str
    fence: str


SCRIPT = ScriptSlots("semaphore_release", SemaphoreReleaseKeys, SemaphoreReleaseArgs)


def semaphore_release_keys(lease_record: str, semaphores: Sequence[str]) -> list[str]:
    """KEYS of ``semaphore_release.lua``: the lease record, then every semaphore."""
    return wire(SemaphoreReleaseKeys(lease_record=lease_record, semaphores=tuple(semaphores)))


def semaphore_release_args(lease_id: str, fence: str) -> list[str]:
    """ARGV of ``semaphore_release.lua`` (``fence`` from ``fence_arg``; "" = none)."""
    return wire(SemaphoreReleaseArgs(lease_id=lease_id, fence=fence))


def parse_semaphore_release(reply: Any) -> int:
    """Members removed (0 when already released or held by a newer claim)."""
    return int(reply)
