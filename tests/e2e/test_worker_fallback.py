"""Provider fallback through the real worker: MiniMax (a local server in its wire format)
behind its circuit breaker in Redis, and a second provider (a local server speaking the
OpenAI chat-completions format). What each path does to the generation, the one ledger
row (provider and model that answered, cost), the refund and the slots.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.fake_minimax import (
    FakeOpenAI,
    RecordedRequest,
    Scripted,
    answer_prompt,
    base_error,
    http_error,
    ok,
    openai_error,
)
from shared.ai import cost_micro_usd
from shared.ai.providers.openai_compat import OpenAICompatClient
from shared.bootstrap import Container
from shared.enforcement.circuit import RedisCircuit, RedisSlots
from shared.plans import Lane
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import MODEL, WorkerEnv

FB_PROVIDER = "openrouter"
FB_MODEL = "fallback-model-x"
FB_KEY = "fb-key-4ac1f0e2b7d9"
FB_TOKENS = (7, 11)


class FakeTime:
    """Milliseconds added to Redis TIME in the breaker's script calls (fake time)."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms

    @property
    def s(self) -> float:
        return self.ms / 1000

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


def fallback_answer(request: RecordedRequest) -> Scripted:
    """What the prompt asks for, with the fallback's own token counts."""
    good = answer_prompt(request)
    assert isinstance(good.body, dict)
    body = {
        **good.body,
        "usage": {"prompt_tokens": FB_TOKENS[0], "completion_tokens": FB_TOKENS[1]},
    }
    return Scripted(200, body)


@dataclass
class Fallback:
    env: WorkerEnv
    second: FakeOpenAI
    container: Container
    clock: FakeTime

    def circuit(self) -> RedisCircuit:
        s = self.container.settings
        return RedisCircuit(
            self.container.redis, self.container.keys, "minimax", MODEL,
            failures=s.circuit_failures, window_s=s.circuit_window_s,
            cooldown_s=s.circuit_cooldown_s, trial_ttl_s=s.max_job_runtime_s,
            time_offset_ms=self.clock,
        )  # fmt: skip

    def ledger(self, generation_id: str) -> dict[str, Any]:
        fields = ("provider", "model", "prompt_tokens", "completion_tokens", "cost_micro_usd",
                  "billable")  # fmt: skip
        [row] = self.env.sql(
            f"SELECT {', '.join(fields)} FROM usage_ledger WHERE generation_id = CAST(:g AS uuid)",
            g=generation_id,
        )
        return dict(zip(fields, row, strict=True))

    def slots_in_use(self, provider: str, model: str) -> int:
        key = self.container.keys.provider(provider, model, "interactive")
        return int(self.container.redis._client.zcard(key))  # type: ignore[attr-defined]


@pytest.fixture
def make_fallback(
    make_worker_env: WorkerEnvFactory, use_container: Callable[[Container], Container]
) -> Iterator[Callable[..., Fallback]]:
    seconds: list[FakeOpenAI] = []
    clients: list[OpenAICompatClient] = []

    def make(
        *,
        default: Scripted | None = None,
        responder: Callable[[RecordedRequest], Scripted] | None = None,
        clock: FakeTime | None = None,
        **settings: Any,
    ) -> Fallback:
        env = make_worker_env(default=default, responder=responder)
        second = FakeOpenAI(responder=fallback_answer).start()
        seconds.append(second)
        client = OpenAICompatClient(
            FB_KEY, provider=FB_PROVIDER, base_url=second.base_url, model=FB_MODEL,
            max_tokens=512, backoff_base_s=0.01, backoff_cap_s=0.05, min_attempt_s=0.2,
        )  # fmt: skip
        clients.append(client)
        clock = clock or FakeTime()
        container = env.with_fallback(client, time_offset_ms=clock, **settings)
        use_container(container)
        made.append(container)
        _reset_circuit(container)  # the run's tests share one key prefix: start closed
        return Fallback(env, second, container, clock)

    made: list[Container] = []
    yield make
    for container in made:
        _reset_circuit(container)
    for client in clients:
        client.close()
    for second in seconds:
        second.stop()


def _reset_circuit(container: Container) -> None:
    keys = container.keys
    container.redis.delete(keys.circuit("minimax", MODEL), keys.circuit_failures("minimax", MODEL))


def _run(fb: Fallback, user: Api) -> str:
    generation_id = fb.env.create(user.headers)
    r = fb.env.deliver(fb.env.job(generation_id))
    assert r.status_code == 200, r.text
    return generation_id


def test_minimax_5xx_past_its_budget_falls_back_and_the_ledger_names_who_answered(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=http_error(503))
    user = api("pro")
    generation_id = _run(fb, user)

    assert fb.env.generation(generation_id)["status"] == "succeeded"
    assert fb.env.fake.calls == 4  # MiniMax's whole retry budget, then the fallback once
    assert fb.second.calls == 1
    [request] = fb.second.requests
    assert request.headers["authorization"] == f"Bearer {FB_KEY}"
    assert request.body["model"] == FB_MODEL
    assert fb.ledger(generation_id) == {
        "provider": FB_PROVIDER,
        "model": FB_MODEL,
        "prompt_tokens": FB_TOKENS[0],
        "completion_tokens": FB_TOKENS[1],
        "cost_micro_usd": cost_micro_usd(FB_MODEL, *FB_TOKENS),
        "billable": True,
    }
    assert fb.env.usage(user.headers) == (1, 0)  # charged once, every slot given back
    assert fb.slots_in_use(FB_PROVIDER, FB_MODEL) == 0
    fb.env.assert_books(user.headers, user.user_id)


def test_what_minimax_spent_before_giving_up_is_added_at_its_own_price(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=base_error(1013, prompt_tokens=50, completion_tokens=5))
    generation_id = _run(fb, api("pro"))

    row = fb.ledger(generation_id)
    assert (row["provider"], row["model"], row["billable"]) == (FB_PROVIDER, FB_MODEL, True)
    assert row["cost_micro_usd"] == cost_micro_usd(FB_MODEL, *FB_TOKENS) + cost_micro_usd(
        MODEL, 4 * 50, 4 * 5
    )


def test_both_failing_fails_the_job_with_a_refund_and_the_cost_on_the_fallback(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=http_error(502))
    fb.second.push(openai_error(400))
    user = api("pro")
    generation_id = _run(fb, user)

    gen = fb.env.generation(generation_id)
    assert (gen["status"], gen["code"]) == ("failed", "PROVIDER_BAD_REQUEST")
    row = fb.ledger(generation_id)
    assert (row["provider"], row["model"], row["billable"]) == (FB_PROVIDER, FB_MODEL, False)
    assert fb.env.usage(user.headers) == (0, 0)  # refunded, released
    assert fb.slots_in_use(FB_PROVIDER, FB_MODEL) == 0
    fb.env.assert_books(user.headers, user.user_id)


def test_a_permanent_minimax_error_does_not_fall_back(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=http_error(401))
    user = api("pro")
    generation_id = _run(fb, user)

    gen = fb.env.generation(generation_id)
    assert (gen["status"], gen["code"]) == ("failed", "PROVIDER_AUTH")
    assert fb.second.calls == 0
    assert fb.ledger(generation_id)["provider"] == "minimax"
    assert fb.circuit().state() == "closed"  # MiniMax answered: not an outage
    fb.env.assert_books(user.headers, user.user_id)


def test_minimax_healthy_runs_there_with_its_own_ledger_row(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=ok(prompt_tokens=100, completion_tokens=200))
    generation_id = _run(fb, api("pro"))

    assert fb.second.calls == 0
    row = fb.ledger(generation_id)
    assert (row["provider"], row["model"]) == ("minimax", MODEL)
    assert row["cost_micro_usd"] == cost_micro_usd(MODEL, 100, 200)


def test_while_the_circuit_is_open_minimax_is_not_called(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=http_error(503), circuit_failures=2)
    user = api("pro")
    _run(fb, user)
    _run(fb, user)
    assert fb.circuit().state() == "open"
    calls = fb.env.fake.calls
    generation_id = _run(fb, user)

    assert fb.env.fake.calls == calls
    assert fb.env.generation(generation_id)["status"] == "succeeded"
    assert fb.ledger(generation_id)["provider"] == FB_PROVIDER


def test_a_full_fallback_lane_fails_the_job_retryable_with_a_refund(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    fb = make_fallback(default=http_error(503))
    cap = fb.container.settings.provider_cap(Lane.INTERACTIVE)
    others = RedisSlots(
        fb.container.redis, fb.container.keys, {Lane.INTERACTIVE: cap, Lane.BATCH: cap},
        lease_ttl_s=60,
    )  # fmt: skip
    holders = [f"other-{i}" for i in range(cap)]
    try:
        for holder in holders:
            assert others.acquire(FB_PROVIDER, FB_MODEL, "interactive", holder)
        user = api("pro")
        generation_id = _run(fb, user)

        gen = fb.env.generation(generation_id)
        assert (gen["status"], gen["code"]) == ("failed", "PROVIDER_UNAVAILABLE")
        assert fb.second.calls == 0
        assert fb.slots_in_use(FB_PROVIDER, FB_MODEL) == cap  # the others' slots untouched
        assert fb.env.usage(user.headers) == (0, 0)
        fb.env.assert_books(user.headers, user.user_id)
    finally:
        for holder in holders:
            others.release(FB_PROVIDER, FB_MODEL, "interactive", holder)


# ---- the outage ---------------------------------------------------------------------

WAVES = 10
JOBS_PER_WAVE = 5
WAVE_S = 10.0
OUTAGE = (15.0, 75.0)  # MiniMax answers 503 for these 60 s of fake time
FAILING_WAVE = 5  # the fallback refuses two jobs of this wave: they fail and are refunded


class _StateLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.states: list[str] = []
        self.fallbacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if fields.get("event") == "circuit_state":
            self.states.append(fields["state"])
        elif fields.get("event") == "provider_fallback":
            self.fallbacks += 1


def test_a_minimax_outage_of_60_fake_seconds_over_50_jobs(
    make_fallback: Callable[..., Fallback], api: Callable[..., Api]
) -> None:
    clock = FakeTime()
    outage_answers = 0
    lock = threading.Lock()

    def minimax(request: RecordedRequest) -> Scripted:
        nonlocal outage_answers
        if OUTAGE[0] <= clock.s < OUTAGE[1]:
            with lock:
                outage_answers += 1
            return http_error(503)
        return answer_prompt(request)

    fb = make_fallback(
        responder=minimax,
        clock=clock,
        circuit_failures=3,  # the first outage wave opens it, whatever the timing
        circuit_window_s=30,
        circuit_cooldown_s=20,
    )
    circuit = fb.circuit()

    log = _StateLog()
    loggers = [logging.getLogger("reel.enforcement"), logging.getLogger("reel.ai")]
    for lg in loggers:
        lg.addHandler(log)
    users = [api("pro") for _ in range(JOBS_PER_WAVE)]
    jobs: list[tuple[Api, str, float]] = []
    states: list[str] = []
    try:
        for wave in range(WAVES):
            if wave == FAILING_WAVE:
                fb.second.push(openai_error(400), openai_error(400))
            created = [(u, fb.env.create(u.headers)) for u in users]
            threads = [
                threading.Thread(target=fb.env.deliver, args=(fb.env.job(g),)) for _, g in created
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            jobs += [(u, g, clock.s) for u, g in created]
            states.append(circuit.state())
            clock.advance(WAVE_S)
    finally:
        for lg in loggers:
            lg.removeHandler(log)

    outcomes: dict[str, int] = {}
    for user, generation_id, at in jobs:
        gen = fb.env.generation(generation_id)
        row = fb.ledger(generation_id)
        key = f"{gen['status']} on {row['provider']}"
        outcomes[key] = outcomes.get(key, 0) + 1
        if gen["status"] == "succeeded":
            assert row["billable"] is True
            if row["provider"] == "minimax":
                assert not OUTAGE[0] <= at < OUTAGE[1]  # MiniMax never answered in the outage
                assert (row["model"], row["cost_micro_usd"]) == (
                    MODEL,
                    cost_micro_usd(MODEL, 100, 200),
                )
            else:
                assert (row["provider"], row["model"]) == (FB_PROVIDER, FB_MODEL)
                assert row["cost_micro_usd"] == cost_micro_usd(FB_MODEL, *FB_TOKENS)
        else:
            assert (gen["status"], gen["code"]) == ("failed", "PROVIDER_BAD_REQUEST")
            assert (row["provider"], row["billable"]) == (FB_PROVIDER, False)
    print(f"\noutcomes {outcomes}; circuit after each wave {states}; log states {log.states}")
    print(f"MiniMax 503s {outage_answers}, fallback requests {fb.second.calls}")

    assert sum(outcomes.values()) == WAVES * JOBS_PER_WAVE
    assert outcomes.get(f"failed on {FB_PROVIDER}") == 2
    assert set(outcomes) <= {"succeeded on minimax", f"succeeded on {FB_PROVIDER}",
                             f"failed on {FB_PROVIDER}"}  # fmt: skip
    # Every job of the outage's waves ran on the fallback (t = 20 … 70 s).
    assert outcomes[f"succeeded on {FB_PROVIDER}"] + 2 >= 6 * JOBS_PER_WAVE
    # Opened by the first outage wave's failures; each trial (t = 40, 60) failed and opened
    # it again; the trial at t = 80 (outage over) closed it.
    assert states[:2] == ["closed", "closed"]
    assert states[2:8] == ["open"] * 6
    assert states[8:] == ["closed", "closed"]
    assert log.states == ["open", "half_open", "open", "half_open", "open", "half_open", "closed"]
    # MiniMax was spared: the jobs of the first outage wave admitted before it opened (at
    # least the 3 that opened it, at most all 5) x 4 attempts, then 4 attempts per failed
    # trial (t = 40, 60) — instead of 6 waves x 5 jobs x 4 attempts without a circuit.
    assert 3 * 4 + 2 * 4 <= outage_answers <= 5 * 4 + 2 * 4
    assert log.fallbacks == fb.second.calls  # one request per fallback (400 is not retried)
    assert fb.slots_in_use(FB_PROVIDER, FB_MODEL) == 0
    for user in users:
        fb.env.assert_books(user.headers, user.user_id)
