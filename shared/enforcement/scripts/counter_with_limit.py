"""``lua/counter_with_limit.lua``: charge n units of one usage counter against a limit, or
refuse and change nothing (the seed's single-limit wrappers). KEYS, ARGV, the reply type
and its parser; a missing counter answers ``Need``, settled like admission's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.enforcement.scripts.common import Need, ScriptSlots, opt, wire

__all__ = [
    "SCRIPT",
    "CounterArgs",
    "CounterKeys",
    "CounterResult",
    "counter_args",
    "counter_keys",
    "parse_counter",
]


@dataclass(frozen=True, slots=True)
class CounterKeys:
    counter: str


@dataclass(frozen=True, slots=True)
class CounterArgs:
    limit: str
    n: str
    expireat_s: str
    seed: str


SCRIPT = ScriptSlots("counter_with_limit", CounterKeys, CounterArgs)


def counter_keys(counter_key: str) -> list[str]:
    """KEYS of ``counter_with_limit.lua`` (a key from ``Keys.month_counters``)."""
    return wire(CounterKeys(counter=counter_key))


def counter_args(limit: int, n: int, expireat_s: int, seed: int | None) -> list[str]:
    """ARGV of ``counter_with_limit.lua``; ``seed`` only after a ``need_seed`` reply."""
    slots = CounterArgs(limit=str(limit), n=str(n), expireat_s=str(expireat_s), seed=opt(seed))
    return wire(slots)


@dataclass(frozen=True, slots=True)
class CounterResult:
    """A thin counter check: ``allowed`` and the counter after it."""

    allowed: bool
    used: int
    limit: int
    resets_at: datetime


def parse_counter(reply: Sequence[Any], counter: str, resets_at: datetime) -> CounterResult | Need:
    """The typed reply; ``need_seed`` names ``counter`` ('month', 'hour' or 'full')."""
    if reply[0] == "need_seed":
        return Need(plan=False, counters=frozenset({counter}))
    return CounterResult(reply[0] == "ok", int(reply[1]), int(reply[2]), resets_at)
