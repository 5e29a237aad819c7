"""MiniMax's circuit breaker and a fallback provider's in-flight slots, in Redis.

``RedisCircuit`` runs ``lua/circuit.lua`` (one call per decision, so every instance
shares one state): ``failures`` failed calls within ``window_s`` open it; after
``cooldown_s`` the first caller becomes the one trial (half-open, everyone else still
denied); the trial's success closes it, its failure opens it again. A trial that never
reports (its instance died) frees the half-open state after ``trial_ttl_s``. Each change of
state is logged as ``circuit_state`` (the log-based metric of the same name counts them).

``RedisSlots`` takes and gives back one slot of a ``provider:model:lane`` semaphore (the
key admission uses for MiniMax) for the time a fallback call runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Literal

from shared.enforcement.scripts import circuit, semaphore_acquire, semaphore_release
from shared.enforcement.scripts.circuit import CircuitReply, CircuitState
from shared.observability import log_event
from shared.plans import Lane
from shared.redis.client import RedisPort
from shared.redis.keys import Keys

__all__ = ["CircuitReply", "RedisCircuit", "RedisSlots"]

_log = logging.getLogger("reel.enforcement")


def _no_offset() -> int:
    return 0


class RedisCircuit:
    """The circuit breaker of one (provider, model); see the module doc."""

    def __init__(
        self,
        redis: RedisPort,
        keys: Keys,
        provider: str,
        model: str,
        *,
        failures: int,
        window_s: int,
        cooldown_s: int,
        trial_ttl_s: int,
        time_offset_ms: Callable[[], int] = _no_offset,
    ) -> None:
        self._redis = redis
        self._keys = circuit.circuit_keys(keys, provider, model)
        self._provider, self._model = provider, model
        self._failures = failures
        self._window_ms = window_s * 1000
        self._cooldown_ms = cooldown_s * 1000
        self._trial_ttl_ms = trial_ttl_s * 1000
        self._offset = time_offset_ms

    def _run(self, op: str, caller: str) -> CircuitReply:
        args = circuit.circuit_args(
            op,
            caller,
            time_offset_ms=self._offset(),
            failures=self._failures,
            window_ms=self._window_ms,
            cooldown_ms=self._cooldown_ms,
            trial_ttl_ms=self._trial_ttl_ms,
        )
        reply = circuit.parse_circuit(self._redis.run(circuit.SCRIPT.name, self._keys, args))
        if reply.changed:
            log_event(
                _log, "circuit_state", level=logging.WARNING, provider=self._provider,
                model=self._model, state=reply.state, cause=op,
            )  # fmt: skip
        return reply

    def admit(self, caller: str) -> Literal["allow", "trial", "deny"]:
        verdict = self._run("admit", caller).verdict
        return "trial" if verdict == "trial" else "deny" if verdict == "deny" else "allow"

    def record(self, caller: str, *, ok: bool) -> None:
        self._run("success" if ok else "failure", caller)

    def state(self) -> CircuitState:
        """The stored state (reads only; an open circuit past its cool-down still reads open)."""
        return self._run("peek", "").state


class RedisSlots:
    """One in-flight slot of a ``provider:model:lane`` semaphore per holder."""

    def __init__(
        self,
        redis: RedisPort,
        keys: Keys,
        caps: Mapping[Lane, int],
        *,
        lease_ttl_s: int,
        time_offset_ms: Callable[[], int] = _no_offset,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._caps = dict(caps)
        self._lease_ttl_ms = lease_ttl_s * 1000
        self._offset = time_offset_ms

    def acquire(self, provider: str, model: str, lane: str, holder: str) -> bool:
        limit = self._caps[Lane(lane)]
        keys = semaphore_acquire.semaphore_acquire_keys(self._keys.provider(provider, model, lane))
        args = semaphore_acquire.semaphore_acquire_args(
            holder, limit, time_offset_ms=self._offset(), lease_ttl_ms=self._lease_ttl_ms
        )
        reply = self._redis.run(semaphore_acquire.SCRIPT.name, keys, args)
        return semaphore_acquire.parse_semaphore_acquire(reply, limit).acquired

    def release(self, provider: str, model: str, lane: str, holder: str) -> None:
        keys = semaphore_release.semaphore_release_keys(
            self._keys.lease(holder), (self._keys.provider(provider, model, lane),)
        )
        args = semaphore_release.semaphore_release_args(holder, fence="")
        self._redis.run(semaphore_release.SCRIPT.name, keys, args)
