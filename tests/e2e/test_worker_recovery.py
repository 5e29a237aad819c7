"""At-least-once delivery and crashes: redelivery, the failure callback, the sweeper and
a worker that died mid-job. Whatever arrives in whatever order, each generation ends
exactly once: one set of variants, one ledger row, at most one refund, leases released.

Failure tests run one generation to success first (the "anchor"), so the monthly pool
reads 1 after a correct refund and 0 after a double one (counters never go below zero).

A delivery that arrives while another holds the job answers 503 with ``Retry-After``
(QStash comes back later); one that arrives after the end answers 200
``already_terminal`` (acknowledged, nothing done).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devtools.fake_minimax import delayed, ok
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import WorkerEnv

RUNTIME_S = 30  # the job cap of these tests' worker


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    # Any call beyond the scripted ones still succeeds, so an extra run would show as
    # extra variants/ledger rows/calls rather than as a confusing provider failure.
    return make_worker_env(default=ok(), max_job_runtime_s=RUNTIME_S)


def _anchor(env: WorkerEnv, user: Api) -> None:
    """One succeeded (charged) generation for ``user``; costs one fake call."""
    env.fake.push(ok())
    generation_id = env.create(user.headers)
    assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}


def _assert_busy(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def _assert_succeeded_once(env: WorkerEnv, generation_id: str, variants: int = 1) -> None:
    assert env.generation(generation_id)["status"] == "succeeded"
    assert env.variant_count(generation_id) == variants
    [row] = env.ledger(generation_id)
    assert row["billable"] is True


# ---------------------------------------------------------------- redelivery


def test_five_concurrent_deliveries_run_the_job_once(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    env.fake.push(delayed(ok(count=2), 0.8))
    generation_id = env.create(user.headers, variants=2)
    job = env.job(generation_id)
    start = threading.Barrier(5)

    def deliver() -> httpx.Response:
        start.wait()
        return env.deliver(job)

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: deliver(), range(5)))

    results = sorted(
        r.json()["result"] if r.status_code == 200 else str(r.status_code) for r in answers
    )
    assert results.count("succeeded") == 1, results
    # The others arrived while it ran (503 + Retry-After) or after it ended (200).
    assert set(results) <= {"succeeded", "503", "already_terminal"}, results
    for r in answers:
        if r.status_code == 503:
            _assert_busy(r)
    assert env.fake.calls == 1
    _assert_succeeded_once(env, generation_id, variants=2)
    assert env.generation(generation_id)["attempts"] == 1
    assert env.usage(user.headers) == (1, 0)  # charged once, never refunded, released

    # QStash's retry of a 503 comes back after the end: acknowledged, nothing done.
    assert env.deliver(job).json() == {"result": "already_terminal"}
    assert env.fake.calls == 1
    assert env.usage(user.headers) == (1, 0)
    env.assert_books(user.headers, user.user_id)


def test_redelivery_while_running_keeps_the_running_jobs_lease(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    env.fake.push(delayed(ok(), 1.0))
    generation_id = env.create(user.headers)
    job = env.job(generation_id)

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(env.deliver, job)
        env.wait_for(lambda: env.fake.calls == 1)  # the first delivery is mid-job

        _assert_busy(env.deliver(job))
        # The job still runs: its concurrency slot must still be taken, else the user
        # could start more jobs at once than the plan allows.
        assert env.usage(user.headers) == (1, 1)

        assert first.result().json() == {"result": "succeeded"}
    _assert_succeeded_once(env, generation_id)
    assert env.usage(user.headers) == (1, 0)
    env.assert_books(user.headers, user.user_id)


# ---------------------------------------------------------------- failure callback


def test_failure_callback_fails_a_queued_generation_once(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    _anchor(env, user)
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    assert env.usage(user.headers) == (2, 1)

    r = env.failure_callback(job)

    assert r.status_code == 200, r.text
    assert r.json() == {"failed": True}
    gen = user.get(f"/v1/generations/{generation_id}").json()
    assert (gen["status"], gen["error"]["code"]) == ("failed", "DELIVERY_FAILED")
    assert env.usage(user.headers) == (1, 0)  # refunded, released
    [row] = env.ledger(generation_id)
    assert (row["billable"], row["prompt_tokens"]) == (False, 0)

    # QStash may send the callback twice; and a late delivery may still arrive.
    assert env.failure_callback(job).json() == {"failed": False}
    assert env.deliver(job).json() == {"result": "already_terminal"}
    assert env.usage(user.headers) == (1, 0)
    assert env.fake.calls == 1  # the anchor's only
    assert len(env.ledger(generation_id)) == 1
    env.assert_books(user.headers, user.user_id)


def test_failure_callback_leaves_a_job_that_is_still_running_alone(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    """Duplicates of a long job answer 503 until QStash gives up on *them*; their
    callback must not fail the original delivery that is still at work."""
    user = api("pro")
    env.fake.push(delayed(ok(), 1.0))
    generation_id = env.create(user.headers)
    job = env.job(generation_id)

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(env.deliver, job)
        env.wait_for(lambda: env.fake.calls == 1)

        assert env.failure_callback(job).json() == {"failed": False}

        assert first.result().json() == {"result": "succeeded"}
    _assert_succeeded_once(env, generation_id)
    assert env.usage(user.headers) == (1, 0)
    env.assert_books(user.headers, user.user_id)


# ---------------------------------------------------------------- sweeper


@pytest.mark.parametrize("running", [False, True], ids=["queued", "running"])
def test_sweeper_fails_a_stuck_generation_and_refunds_once(
    env: WorkerEnv, api: Callable[..., Api], running: bool
) -> None:
    user = api("pro")
    _anchor(env, user)
    generation_id = env.create(user.headers)
    # Queued ones get the whole lease TTL, running ones the max runtime from their start.
    age_s = env.settings.lease_ttl_s + 60 if not running else RUNTIME_S + 60
    env.backdate(generation_id, running=running, age_s=age_s)

    r = env.sweep()

    assert r.status_code == 200, r.text
    assert r.json()["failed"] >= 1  # the run's other stuck generations count too
    gen = env.generation(generation_id)
    assert (gen["status"], gen["code"]) == ("failed", "TIMED_OUT")
    assert env.usage(user.headers) == (1, 0)
    assert [row["billable"] for row in env.ledger(generation_id)] == [False]

    assert env.sweep().status_code == 200  # running it again refunds nothing more
    assert env.usage(user.headers) == (1, 0)
    assert len(env.ledger(generation_id)) == 1
    env.assert_books(user.headers, user.user_id)


def test_sweeper_leaves_a_job_inside_its_runtime_alone(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    generation_id = env.create(user.headers)
    env.backdate(generation_id, running=True, age_s=RUNTIME_S - 10)

    env.sweep()
    assert env.generation(generation_id)["status"] == "running"
    assert env.usage(user.headers) == (1, 1)

    env.sql(
        "UPDATE generations SET started_at = started_at - interval '1 hour' "
        "WHERE id = CAST(:g AS uuid)",
        g=generation_id,
    )
    env.sweep()
    assert env.generation(generation_id)["code"] == "TIMED_OUT"
    assert env.usage(user.headers) == (0, 0)
    env.assert_books(user.headers, user.user_id)


# ---------------------------------------------------------------- worker killed mid-job


def test_redelivery_takes_over_a_job_whose_worker_died(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    # A worker claimed it and died: running, never finished, lease still held.
    env.backdate(generation_id, running=True, age_s=RUNTIME_S - 10)

    # Inside its max runtime the dead worker might still be alive: hands off.
    _assert_busy(env.deliver(job))
    assert env.fake.calls == 0
    assert env.usage(user.headers) == (1, 1)

    # Past the max runtime QStash's next retry takes it over and finishes it, once.
    env.sql(
        "UPDATE generations SET started_at = started_at - interval '1 minute' "
        "WHERE id = CAST(:g AS uuid)",
        g=generation_id,
    )
    r = env.deliver(job)

    assert r.json() == {"result": "succeeded"}
    assert env.fake.calls == 1
    _assert_succeeded_once(env, generation_id)
    assert env.generation(generation_id)["attempts"] == 2
    assert env.usage(user.headers) == (1, 0)  # charged once, never refunded

    assert env.deliver(job).json() == {"result": "already_terminal"}
    assert env.sweep().status_code == 200
    assert env.fake.calls == 1
    assert env.generation(generation_id)["status"] == "succeeded"
    assert env.usage(user.headers) == (1, 0)
    env.assert_books(user.headers, user.user_id)


def test_sweeper_first_then_redelivery_is_acknowledged_and_does_nothing(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    _anchor(env, user)
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    env.backdate(generation_id, running=True, age_s=RUNTIME_S + 60)

    assert env.sweep().status_code == 200
    assert env.generation(generation_id)["code"] == "TIMED_OUT"
    assert env.usage(user.headers) == (1, 0)

    r = env.deliver(job)

    assert r.json() == {"result": "already_terminal"}
    assert env.fake.calls == 1  # the anchor's only
    assert env.variant_count(generation_id) == 0
    assert env.usage(user.headers) == (1, 0)
    assert env.generation(generation_id)["status"] == "failed"
    assert len(env.ledger(generation_id)) == 1
    env.assert_books(user.headers, user.user_id)
