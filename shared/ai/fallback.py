"""Provider fallback: MiniMax first, a second provider when it is down.

``FallbackLLM`` is an ``LLMPort`` over two providers and MiniMax's circuit breaker:

- circuit **open** (or half-open with its trial taken elsewhere): the job goes straight
  to the second provider; MiniMax is not called;
- otherwise MiniMax runs with the job's deadline minus ``reserve_s`` (kept for the second
  provider). A **retryable** failure past its budget (``ProviderError.transient``:
  ``PROVIDER_UNAVAILABLE`` / ``PROVIDER_TIMEOUT``) is recorded on the circuit and the job
  goes to the second provider; any other failure (auth, content policy, bad request…) is
  the job's answer, as without a fallback, and counts as MiniMax being up;
- the trial call of a half-open circuit closes it on success and opens it again on a
  retryable failure.

The two providers run one after the other, never together. The second one takes its own
in-flight slot (``provider:model:lane``) for the time it runs and gives it back after;
when its lane is full the job fails as ``PROVIDER_UNAVAILABLE`` (retryable). What MiniMax
spent before giving up travels as ``prior_cost_micro_usd`` (priced at MiniMax's model) on
the answer or the error, with the provider and model that answered, so the one ledger
row of the job names who answered and its cost includes both. Nothing here bills: the
job's units were taken once, at admission.

Logs (``reel.ai``): ``provider_fallback`` per job sent to the second provider (``reason``
``circuit_open`` | ``primary_failed``, ``outcome``), counted by the log-based metric of
the same name.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from typing import Final, Literal, Protocol

from shared.ai.errors import PROVIDER_UNAVAILABLE, ProviderError
from shared.ai.pricing import cost_micro_usd
from shared.ai.types import Completion, GenerationJob, LLMPort

__all__ = ["CircuitPort", "FallbackLLM", "SlotPort", "Verdict"]

logger = logging.getLogger("reel.ai")

Verdict = Literal["allow", "trial", "deny"]
FallbackReason = Literal["circuit_open", "primary_failed"]

# The primary never gets less than this much of the job's time (a short job cap).
_MIN_PRIMARY_SHARE: Final = 0.5


class CircuitPort(Protocol):
    """The primary's circuit breaker, shared by every instance."""

    def admit(self, caller: str) -> Verdict:
        """May ``caller`` call the primary (``trial``: as the half-open circuit's one trial)?"""
        ...

    def record(self, caller: str, *, ok: bool) -> None:
        """The outcome of ``caller``'s call (``ok``: the primary answered, even with a refusal)."""
        ...


class SlotPort(Protocol):
    """In-flight slots of one (provider, model, lane)."""

    def acquire(self, provider: str, model: str, lane: str, holder: str) -> bool:
        """Take one slot for ``holder``; False (nothing taken) when the lane is full."""
        ...

    def release(self, provider: str, model: str, lane: str, holder: str) -> None:
        """Give ``holder``'s slot back (idempotent)."""
        ...


class FallbackLLM:
    """``LLMPort``: ``primary`` guarded by ``circuit``, then ``secondary`` (see module doc)."""

    def __init__(
        self,
        primary: LLMPort,
        secondary: LLMPort,
        circuit: CircuitPort,
        slots: SlotPort,
        *,
        reserve_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._secondary = secondary
        self._circuit = circuit
        self._slots = slots
        self._reserve_s = reserve_s
        self._clock = clock
        # What create records on the generation (and its admission lease): the primary.
        self.provider = primary.provider
        self.model = primary.model

    def __repr__(self) -> str:
        return f"FallbackLLM({self._primary!r} -> {self._secondary!r})"

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        """Write ``job``'s variants on the primary, or on the secondary (module doc)."""
        caller = uuid.uuid4().hex
        verdict = self._circuit.admit(caller)
        if verdict == "deny":
            return self._fall_back(job, deadline, caller, "circuit_open", None)
        try:
            done = self._primary.generate(job, deadline=self._primary_deadline(deadline))
        except ProviderError as exc:
            self._circuit.record(caller, ok=not exc.transient)
            if not exc.transient:
                raise
            return self._fall_back(job, deadline, caller, "primary_failed", exc)
        if verdict == "trial":
            self._circuit.record(caller, ok=True)  # a closed circuit needs no news of success
        return done

    def _primary_deadline(self, deadline: float) -> float:
        remaining = deadline - self._clock()
        return deadline - min(self._reserve_s, remaining * _MIN_PRIMARY_SHARE)

    def _fall_back(
        self,
        job: GenerationJob,
        deadline: float,
        holder: str,
        reason: FallbackReason,
        spent: ProviderError | None,
    ) -> Completion:
        second = self._secondary
        prior = (
            cost_micro_usd(self._primary.model, spent.prompt_tokens, spent.completion_tokens)
            if spent
            else 0
        )
        if not self._slots.acquire(second.provider, second.model, job.lane, holder):
            _log(reason, "busy", second)
            raise ProviderError(
                PROVIDER_UNAVAILABLE,
                "The fallback provider is at capacity.",
                transient=True,
                prompt_tokens=spent.prompt_tokens if spent else 0,
                completion_tokens=spent.completion_tokens if spent else 0,
                attempts=spent.attempts if spent else 0,
            )
        try:
            done = second.generate(job, deadline=deadline)
        except ProviderError as exc:
            _log(reason, "failed", second, code=exc.code)
            exc.provider, exc.model = second.provider, second.model
            exc.prior_cost_micro_usd += prior
            raise
        finally:
            self._slots.release(second.provider, second.model, job.lane, holder)
        _log(reason, "succeeded", second)
        return dataclasses.replace(done, prior_cost_micro_usd=done.prior_cost_micro_usd + prior)


def _log(reason: FallbackReason, outcome: str, second: LLMPort, *, code: str = "") -> None:
    logger.warning(
        "provider_fallback reason=%s outcome=%s provider=%s model=%s%s",
        reason,
        outcome,
        second.provider,
        second.model,
        f" code={code}" if code else "",
        extra={
            "fields": {
                "event": "provider_fallback",
                "reason": reason,
                "outcome": outcome,
                "provider": second.provider,
                "model": second.model,
                **({"code": code} if code else {}),
            }
        },
    )
