"""FallbackLLM's decisions with in-memory providers, circuit and slots (the Redis and HTTP
versions are exercised in tests/integration/test_circuit.py and
tests/e2e/test_worker_fallback.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from shared.ai import (
    PROVIDER_AUTH,
    PROVIDER_BAD_REQUEST,
    PROVIDER_UNAVAILABLE,
    Completion,
    GenerationJob,
    ProviderError,
)
from shared.ai.fallback import FallbackLLM, Verdict
from shared.ai.pricing import cost_micro_usd

JOB = GenerationJob(
    kind="create", brief="b", platform="tiktok", title=None, tone=None,
    duration_seconds=30, language="en", variants=1, lane="batch",
)  # fmt: skip


@dataclass
class Provider:
    provider: str
    model: str
    outcome: Completion | ProviderError | None = None
    deadlines: list[float] = field(default_factory=list)

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        self.deadlines.append(deadline)
        if isinstance(self.outcome, ProviderError):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


@dataclass
class Circuit:
    verdict: Verdict = "allow"
    records: list[bool] = field(default_factory=list)

    def admit(self, caller: str) -> Verdict:
        return self.verdict

    def record(self, caller: str, *, ok: bool) -> None:
        self.records.append(ok)


@dataclass
class Slots:
    free: bool = True
    held: set[tuple[str, str, str, str]] = field(default_factory=set)
    taken: list[tuple[str, str, str]] = field(default_factory=list)

    def acquire(self, provider: str, model: str, lane: str, holder: str) -> bool:
        if self.free:
            self.held.add((provider, model, lane, holder))
            self.taken.append((provider, model, lane))
        return self.free

    def release(self, provider: str, model: str, lane: str, holder: str) -> None:
        self.held.discard((provider, model, lane, holder))


def _done(provider: str, model: str, prompt: int = 10, completion: int = 20) -> Completion:
    return Completion((), provider, model, prompt, completion, 1, None)


def _llm(primary: Provider, secondary: Provider, circuit: Circuit, slots: Slots) -> FallbackLLM:
    return FallbackLLM(primary, secondary, circuit, slots, reserve_s=60, clock=lambda: 0.0)


def _pair(
    primary: Completion | ProviderError | None, secondary: Completion | ProviderError | None
) -> tuple[Provider, Provider]:
    return Provider("minimax", "MiniMax-M2.5", primary), Provider("gw", "m-fb", secondary)


def test_it_presents_the_primarys_identity() -> None:
    p, s = _pair(None, None)
    llm = _llm(p, s, Circuit(), Slots())
    assert (llm.provider, llm.model) == ("minimax", "MiniMax-M2.5")


def test_healthy_primary_answers_and_a_closed_circuit_hears_nothing() -> None:
    p, s = _pair(_done("minimax", "MiniMax-M2.5"), None)
    circuit, slots = Circuit(), Slots()
    assert _llm(p, s, circuit, slots).generate(JOB, deadline=240).provider == "minimax"
    assert circuit.records == []
    assert s.deadlines == []
    assert p.deadlines == [180]  # 60 s kept for the fallback


def test_a_short_job_gives_the_primary_at_least_half() -> None:
    p, s = _pair(_done("minimax", "MiniMax-M2.5"), None)
    _llm(p, s, Circuit(), Slots()).generate(JOB, deadline=30)
    assert p.deadlines == [15]


def test_a_trials_success_is_recorded() -> None:
    p, s = _pair(_done("minimax", "MiniMax-M2.5"), None)
    circuit = Circuit("trial")
    _llm(p, s, circuit, Slots()).generate(JOB, deadline=240)
    assert circuit.records == [True]


def test_an_open_circuit_skips_the_primary() -> None:
    p, s = _pair(_done("minimax", "MiniMax-M2.5"), _done("gw", "m-fb"))
    slots = Slots()
    done = _llm(p, s, Circuit("deny"), slots).generate(JOB, deadline=240)
    assert (done.provider, done.model, done.prior_cost_micro_usd) == ("gw", "m-fb", 0)
    assert p.deadlines == []
    assert s.deadlines == [240]  # the whole job time
    assert slots.taken == [("gw", "m-fb", "batch")]  # its own slot, in the job's lane
    assert slots.held == set()  # given back


def test_a_retryable_primary_failure_falls_back_and_carries_its_cost() -> None:
    spent = ProviderError(PROVIDER_UNAVAILABLE, "x", prompt_tokens=40, completion_tokens=4)
    p, s = _pair(spent, _done("gw", "m-fb"))
    circuit = Circuit()
    done = _llm(p, s, circuit, Slots()).generate(JOB, deadline=240)
    assert done.provider == "gw"
    assert done.prior_cost_micro_usd == cost_micro_usd("MiniMax-M2.5", 40, 4)
    assert circuit.records == [False]


@pytest.mark.parametrize("code", [PROVIDER_AUTH, PROVIDER_BAD_REQUEST])
def test_a_permanent_primary_failure_is_the_answer(code: str) -> None:
    p, s = _pair(ProviderError(code, "x"), _done("gw", "m-fb"))
    circuit = Circuit()
    with pytest.raises(ProviderError) as err:
        _llm(p, s, circuit, Slots()).generate(JOB, deadline=240)
    assert err.value.code == code
    assert s.deadlines == []
    assert circuit.records == [True]  # the primary answered: it is up


def test_a_secondary_failure_names_it_and_gives_its_slot_back() -> None:
    spent = ProviderError(PROVIDER_UNAVAILABLE, "x", prompt_tokens=40, completion_tokens=4)
    p, s = _pair(spent, ProviderError(PROVIDER_BAD_REQUEST, "y", prompt_tokens=3))
    slots = Slots()
    with pytest.raises(ProviderError) as err:
        _llm(p, s, Circuit(), slots).generate(JOB, deadline=240)
    assert (err.value.code, err.value.provider, err.value.model) == (
        PROVIDER_BAD_REQUEST,
        "gw",
        "m-fb",
    )
    assert err.value.prompt_tokens == 3
    assert err.value.prior_cost_micro_usd == cost_micro_usd("MiniMax-M2.5", 40, 4)
    assert slots.held == set()


def test_a_full_fallback_lane_is_a_retryable_failure_without_a_call() -> None:
    spent = ProviderError(PROVIDER_UNAVAILABLE, "x", prompt_tokens=40, completion_tokens=4)
    p, s = _pair(spent, _done("gw", "m-fb"))
    with pytest.raises(ProviderError) as err:
        _llm(p, s, Circuit(), Slots(free=False)).generate(JOB, deadline=240)
    assert err.value.code == PROVIDER_UNAVAILABLE
    assert err.value.transient
    assert (err.value.prompt_tokens, err.value.completion_tokens) == (40, 4)
    assert s.deadlines == []
