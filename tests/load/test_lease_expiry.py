"""A lease whose job vanished: expiry in the real Lua scripts, then the sweeper's refund,
exactly once, however many sweepers and failure callbacks race for it.

The SIGKILLed worker process itself is covered by
``tests/e2e/test_worker_killed_process.py`` (take-over after the max runtime) and the
sweeper's single refund by ``tests/e2e/test_worker_recovery.py``; what is added here is
what happens when nobody comes back before the lease TTL: the slot is reclaimed by the
scripts (not by any Python code), a late delivery cannot steal the slot a newer job now
holds, and concurrent sweeps + the failure callback refund the unit once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from devtools.fake_minimax import ok
from tests.e2e.api_support import assert_error
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import WorkerEnv

pytestmark = pytest.mark.load


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    return make_worker_env(default=ok(), max_job_runtime_s=30)


def test_expired_lease_is_reclaimed_and_swept_once(env: WorkerEnv, api: Callable[..., Api]) -> None:
    user = api("basic")  # one concurrent job: a leaked slot would lock the user out
    lost = env.create(user.headers)  # its job is never delivered: the message was lost
    assert env.usage(user.headers) == (1, 1)
    r = user.post("/v1/create", {"brief": "again", "platform": "tiktok"})
    assert_error(r, 429, "CONCURRENCY_LIMIT")

    # Script time (Redis TIME + offset) moves past the lease TTL; nothing in Python runs.
    env.container.enforcer.time_offset_ms = (env.settings.lease_ttl_s + 5) * 1000
    assert env.usage(user.headers) == (1, 0)  # the expired member no longer counts
    newer = env.create(user.headers)  # admission.lua reclaims the slot
    assert env.usage(user.headers) == (2, 1)

    # The lost job shows up late: its lease expired and the slot is taken, so it is told
    # to come back later instead of running beside the newer job.
    r = env.deliver(env.job(lost))
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    assert env.fake.calls == 0
    assert env.generation(lost)["status"] == "queued"
    assert env.usage(user.headers) == (2, 1)

    # Past the lease TTL the sweeper fails it; four sweeps and QStash's failure callback
    # race, and the unit comes back exactly once (a double refund would read 0).
    env.backdate(lost, running=False, age_s=env.settings.lease_ttl_s + 60)
    with ThreadPoolExecutor(5) as pool:
        calls = [pool.submit(env.sweep) for _ in range(4)]
        calls.append(pool.submit(env.failure_callback, env.job(lost)))
        responses = [f.result(timeout=30) for f in calls]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    gen = env.generation(lost)
    assert gen["status"] == "failed"
    assert gen["code"] in ("TIMED_OUT", "DELIVERY_FAILED")
    assert [row["billable"] for row in env.ledger(lost)] == [False]
    assert env.usage(user.headers) == (1, 1)  # refunded once; the newer job keeps its slot

    assert env.sweep().status_code == 200
    assert env.deliver(env.job(lost)).json() == {"result": "already_terminal"}
    assert env.usage(user.headers) == (1, 1)

    assert env.deliver(env.job(newer)).json() == {"result": "succeeded"}
    assert env.usage(user.headers) == (1, 0)
    assert env.fake.calls == 1
    env.assert_books(user.headers, user.user_id)
