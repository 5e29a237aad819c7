"""``lua/cooldown.lua``: start a cooldown unless one is running (``lib/cooldown.lua``, the
rule admission applies to a regeneration). KEYS, ARGV, the reply type and its parser."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.enforcement.scripts.common import ScriptSlots, wire

__all__ = [
    "SCRIPT",
    "CooldownArgs",
    "CooldownKeys",
    "CooldownResult",
    "cooldown_args",
    "cooldown_keys",
    "parse_cooldown",
]


@dataclass(frozen=True, slots=True)
class CooldownKeys:
    cooldown_marker: str


@dataclass(frozen=True, slots=True)
class CooldownArgs:
    time_offset_ms: str
    cooldown_ms: str


SCRIPT = ScriptSlots("cooldown", CooldownKeys, CooldownArgs)


def cooldown_keys(marker_key: str) -> list[str]:
    """KEYS of ``cooldown.lua`` (``Keys.regen_cooldown``)."""
    return wire(CooldownKeys(cooldown_marker=marker_key))


def cooldown_args(time_offset_ms: int, cooldown_ms: int) -> list[str]:
    """ARGV of ``cooldown.lua``."""
    return wire(CooldownArgs(time_offset_ms=str(time_offset_ms), cooldown_ms=str(cooldown_ms)))


@dataclass(frozen=True, slots=True)
class CooldownResult:
    """A thin cooldown check-and-set."""

    allowed: bool
    retry_after_s: int | None = None


def parse_cooldown(reply: Sequence[Any]) -> CooldownResult:
    """``{1, 0}`` started, ``{0, remaining_ms}`` running (whole seconds, rounded up)."""
    if int(reply[0]) == 1:
        return CooldownResult(True)
    return CooldownResult(False, -(-int(reply[1]) // 1000))
