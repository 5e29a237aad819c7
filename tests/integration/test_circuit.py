"""MiniMax's circuit breaker (``lua/circuit.lua`` through ``RedisCircuit``) and the fallback
provider's slots (``RedisSlots``) on the run's real Redis. Script time is moved with the
time offset, never slept."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from shared.enforcement.circuit import RedisCircuit, RedisSlots
from shared.plans import Lane
from shared.redis.client import TcpRedis
from shared.redis.keys import Keys
from tests.support.script_calls import record_script_calls


class FakeTime:
    """Milliseconds added to Redis TIME in every script call."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture
def redis(redis_url: str) -> Iterator[TcpRedis]:
    port = TcpRedis.from_url(redis_url)
    yield port
    port.close()


@pytest.fixture
def keys(run_prefix: str) -> Keys:
    return Keys(f"{run_prefix}:{uuid.uuid4().hex[:6]}")


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def circuit(redis: TcpRedis, keys: Keys, clock: FakeTime) -> RedisCircuit:
    return RedisCircuit(
        redis, keys, "minimax", "MiniMax-M2.5",
        failures=3, window_s=10, cooldown_s=20, trial_ttl_s=30, time_offset_ms=clock,
    )  # fmt: skip


def _fail(circuit: RedisCircuit, n: int) -> None:
    for _ in range(n):
        assert circuit.admit(uuid.uuid4().hex) == "allow"
        circuit.record(uuid.uuid4().hex, ok=False)


def test_n_failures_within_the_window_open_it(
    circuit: RedisCircuit, redis: TcpRedis, keys: Keys
) -> None:
    assert circuit.state() == "closed"
    _fail(circuit, 2)
    assert circuit.state() == "closed"
    _fail(circuit, 1)
    assert circuit.state() == "open"
    assert circuit.admit("a") == "deny"
    # Opening forgets the failures that opened it (a later close starts from none).
    assert redis._client.exists(keys.circuit_failures("minimax", "MiniMax-M2.5")) == 0


def test_the_failures_of_a_closed_circuit_expire_with_their_window(
    circuit: RedisCircuit, redis: TcpRedis, keys: Keys
) -> None:
    _fail(circuit, 1)
    ttl_ms = redis._client.pttl(keys.circuit_failures("minimax", "MiniMax-M2.5"))
    assert 9_000 < ttl_ms <= 10_000  # the fixture's window: 10 s


def test_failures_spread_wider_than_the_window_do_not(
    circuit: RedisCircuit, clock: FakeTime
) -> None:
    for _ in range(5):
        _fail(circuit, 1)
        clock.advance(6)  # at most 2 failures inside any 10 s
    assert circuit.state() == "closed"


def test_successes_while_closed_leave_it_closed(circuit: RedisCircuit) -> None:
    _fail(circuit, 2)
    circuit.record("s", ok=True)
    assert circuit.state() == "closed"


def test_after_the_cooldown_exactly_one_trial_half_opens_it(
    circuit: RedisCircuit, clock: FakeTime
) -> None:
    _fail(circuit, 3)
    clock.advance(19.9)
    assert circuit.admit("early") == "deny"
    clock.advance(0.2)
    verdicts: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def admit(i: int) -> None:
        start.wait()
        verdict = circuit.admit(f"caller-{i}")
        with lock:
            verdicts.append(verdict)

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(verdicts) == ["deny"] * 15 + ["trial"]
    assert circuit.state() == "half_open"


def _half_open(circuit: RedisCircuit, clock: FakeTime) -> None:
    _fail(circuit, 3)
    clock.advance(21)
    assert circuit.admit("trial") == "trial"


def test_the_trials_success_closes_it_and_forgets_old_failures(
    circuit: RedisCircuit, clock: FakeTime
) -> None:
    _half_open(circuit, clock)
    circuit.record("someone-else", ok=True)  # a call admitted before it opened
    assert circuit.state() == "half_open"
    circuit.record("trial", ok=True)
    assert circuit.state() == "closed"
    assert circuit.admit("x") == "allow"
    _fail(circuit, 2)
    assert circuit.state() == "closed"  # counting starts again from zero


def test_the_trials_failure_opens_it_again_from_now(circuit: RedisCircuit, clock: FakeTime) -> None:
    _half_open(circuit, clock)
    circuit.record("someone-else", ok=False)
    assert circuit.state() == "half_open"
    circuit.record("trial", ok=False)
    assert circuit.state() == "open"
    clock.advance(19)
    assert circuit.admit("b") == "deny"
    clock.advance(2)
    assert circuit.admit("c") == "trial"


def test_a_trial_that_never_reports_is_replaced_after_its_ttl(
    circuit: RedisCircuit, clock: FakeTime
) -> None:
    _half_open(circuit, clock)
    clock.advance(29)
    assert circuit.admit("d") == "deny"
    clock.advance(2)
    assert circuit.admit("e") == "trial"
    circuit.record("trial", ok=True)  # the lost trial's late answer no longer counts
    assert circuit.state() == "half_open"
    circuit.record("e", ok=True)
    assert circuit.state() == "closed"


def test_state_changes_are_logged(
    circuit: RedisCircuit, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="reel.enforcement")
    _half_open(circuit, clock)
    circuit.record("trial", ok=True)
    fields = [
        getattr(r, "fields", {})
        for r in caplog.records
        if getattr(r, "fields", {}).get("event") == "circuit_state"
    ]
    assert [f["state"] for f in fields] == ["open", "half_open", "closed"]
    assert {(f["provider"], f["model"]) for f in fields} == {("minimax", "MiniMax-M2.5")}
    assert [f["cause"] for f in fields] == ["failure", "admit", "success"]


def test_circuits_of_two_models_are_separate(
    redis: TcpRedis, keys: Keys, circuit: RedisCircuit
) -> None:
    other = RedisCircuit(
        redis, keys, "minimax", "MiniMax-M2.5-highspeed",
        failures=3, window_s=10, cooldown_s=20, trial_ttl_s=30,
    )  # fmt: skip
    _fail(circuit, 3)
    assert other.state() == "closed"


def test_slots_are_taken_up_to_the_lane_cap_and_given_back(
    redis: TcpRedis, keys: Keys, clock: FakeTime
) -> None:
    slots = RedisSlots(
        redis, keys, {Lane.INTERACTIVE: 2, Lane.BATCH: 1}, lease_ttl_s=60, time_offset_ms=clock
    )
    take = lambda h: slots.acquire("openrouter", "m", "interactive", h)  # noqa: E731
    assert take("a")
    assert take("b")
    assert not take("c")
    assert slots.acquire("openrouter", "m", "batch", "c")  # another lane, another cap
    slots.release("openrouter", "m", "interactive", "a")
    slots.release("openrouter", "m", "interactive", "a")  # idempotent
    assert take("c")
    assert redis._client.zcard(keys.provider("openrouter", "m", "interactive")) == 2
    clock.advance(61)  # a holder that died: its slot expires with the lease TTL
    assert take("d")


def test_the_circuit_sends_its_settings_in_milliseconds_and_moves_no_time(
    redis: TcpRedis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    circuit = RedisCircuit(
        redis, keys, "minimax", "M", failures=3, window_s=10, cooldown_s=20, trial_ttl_s=30
    )  # production's: no time offset
    sent = record_script_calls(monkeypatch, redis)
    circuit.record("c1", ok=False)
    circuit.record("c2", ok=True)
    assert circuit.state() == "closed"
    settings = ["3", "10000", "20000", "30000"]
    assert [args for _, _, args in sent] == [
        ["0", "failure", "c1", *settings],
        ["0", "success", "c2", *settings],
        ["0", "peek", "", *settings],
    ]


def test_a_slot_is_taken_and_given_back_by_its_holder_alone(
    redis: TcpRedis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = RedisSlots(redis, keys, {Lane.INTERACTIVE: 2, Lane.BATCH: 1}, lease_ttl_s=60)
    sent = record_script_calls(monkeypatch, redis)
    assert slots.acquire("openrouter", "m", "interactive", "h1")
    slots.release("openrouter", "m", "interactive", "h1")
    semaphore = keys.provider("openrouter", "m", "interactive")
    assert sent == [
        ("semaphore_acquire", [semaphore], ["0", "h1", "2", "60000"]),
        ("semaphore_release", [keys.lease("h1"), semaphore], ["h1", ""]),
    ]


_EDGE_TRIES = 100


def _redis_now_ms(redis: TcpRedis) -> int:
    sec, usec = redis._client.time()
    return int(sec) * 1000 + int(usec) // 1000


def test_the_cooldown_and_a_lost_trial_end_at_their_millisecond(
    circuit: RedisCircuit, redis: TcpRedis, keys: Keys, clock: FakeTime
) -> None:
    """Script time can't be pinned, but it can be aimed (as the regeneration cooldown's
    edge test does): the stored instant is Redis TIME now, the script runs with the
    cool-down (or trial TTL) as its offset, so most tries run at exactly that end. At that
    instant the next caller becomes the trial, for an open circuit and a half-open one
    whose trial never reported."""
    state = keys.circuit("minimax", "MiniMax-M2.5")
    clock.ms = 20_000  # the fixture's cool-down; its trial TTL is 30 s
    for _ in range(_EDGE_TRIES):
        redis._client.hset(state, mapping={
            "state": "open", "opened_at": _redis_now_ms(redis), "trial": "", "trial_until": 0,
        })  # fmt: skip
        assert circuit.admit("next") == "trial"
    clock.ms = 30_000
    for _ in range(_EDGE_TRIES):
        redis._client.hset(state, mapping={
            "state": "half_open", "trial": "lost", "trial_until": _redis_now_ms(redis) + 30_000,
        })  # fmt: skip
        assert circuit.admit("next") == "trial"
