"""``lua/circuit.lua``: a provider's circuit breaker, shared by every instance — KEYS,
ARGV, the reply and its parser (``RedisCircuit`` in ``enforcement/circuit.py`` runs it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from shared.enforcement.scripts.common import ScriptSlots, wire
from shared.redis.keys import Keys

__all__ = [
    "SCRIPT",
    "CircuitArgs",
    "CircuitKeys",
    "CircuitReply",
    "CircuitState",
    "circuit_args",
    "circuit_keys",
    "parse_circuit",
]

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class CircuitKeys:
    circuit_state: str
    circuit_failures: str


@dataclass(frozen=True, slots=True)
class CircuitArgs:
    time_offset_ms: str
    op: str
    caller: str
    failures_to_open: str
    window_ms: str
    cooldown_ms: str
    trial_ttl_ms: str


SCRIPT = ScriptSlots("circuit", CircuitKeys, CircuitArgs)


def circuit_keys(keys: Keys, provider: str, model: str) -> list[str]:
    """KEYS of ``circuit.lua``."""
    slots = CircuitKeys(keys.circuit(provider, model), keys.circuit_failures(provider, model))
    return wire(slots)


def circuit_args(
    op: str,
    caller: str,
    *,
    time_offset_ms: int,
    failures: int,
    window_ms: int,
    cooldown_ms: int,
    trial_ttl_ms: int,
) -> list[str]:
    """ARGV of ``circuit.lua``."""
    slots = CircuitArgs(
        time_offset_ms=str(time_offset_ms),
        op=op,
        caller=caller,
        failures_to_open=str(failures),
        window_ms=str(window_ms),
        cooldown_ms=str(cooldown_ms),
        trial_ttl_ms=str(trial_ttl_ms),
    )
    return wire(slots)


@dataclass(frozen=True, slots=True)
class CircuitReply:
    verdict: str  # allow | trial | deny | recorded | state
    state: CircuitState
    changed: bool


def parse_circuit(reply: Sequence[Any]) -> CircuitReply:
    """The typed ``{verdict, state after, changed}`` reply."""
    verdict, state, changed = reply
    return CircuitReply(str(verdict), cast(CircuitState, str(state)), bool(int(changed)))
