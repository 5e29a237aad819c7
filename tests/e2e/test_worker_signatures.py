"""Every worker route refuses a request QStash did not sign for exactly that URL and body.

A refused job changes nothing: the generation stays queued, MiniMax is never called,
the unit stays charged and the lease stays held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis

from devtools.fake_minimax import ok
from shared.queue import WORKER_FAILED_PATH, WORKER_GENERATE_PATH, WORKER_SWEEP_PATH, sign_qstash
from shared.queue.signing import RedisTokenLedger
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import (
    SIGNING_CURRENT,
    SIGNING_NEXT,
    WorkerEnv,
    failure_callback_body,
)


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    return make_worker_env(default=ok())


@pytest.mark.parametrize("key", [SIGNING_CURRENT, SIGNING_NEXT], ids=["current", "next"])
def test_job_signed_with_either_key_runs(env: WorkerEnv, api: Callable[..., Api], key: str) -> None:
    user = api("basic")
    generation_id = env.create(user.headers)

    r = env.deliver(env.job(generation_id), key=key)

    assert r.status_code == 200, r.text
    assert r.json() == {"result": "succeeded"}
    assert env.fake.calls == 1


@pytest.mark.parametrize(
    "forgery",
    ["wrong_key", "expired", "body_tampered", "url_mismatch", "other_path", "missing"],
)
def test_forged_job_is_refused_and_changes_nothing(
    env: WorkerEnv, api: Callable[..., Api], forgery: str
) -> None:
    user = api("basic")
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    body = job.to_body()

    forgeries: dict[str, Callable[[], httpx.Response]] = {
        "wrong_key": lambda: env.deliver(job, key="sig_wrong_" + "w" * 54),
        "expired": lambda: env.deliver(job, now=int(time.time()) - 3600),
        # Signed for another body (one character differs): the body claim no longer matches.
        "body_tampered": lambda: env.deliver(
            job, signed_body=body.replace(b'"request_id":"', b'"request_id":"x')
        ),
        "url_mismatch": lambda: env.deliver(
            job, signed_url="https://evil.example" + WORKER_GENERATE_PATH
        ),
        "other_path": lambda: env.deliver(job, signed_url=env.url(WORKER_FAILED_PATH)),
        "missing": lambda: env.http.post(
            WORKER_GENERATE_PATH, content=body, headers={"Content-Type": "application/json"}
        ),
    }

    r = forgeries[forgery]()

    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert env.fake.calls == 0
    assert env.generation(generation_id)["status"] == "queued"
    assert env.usage(user.headers) == (1, 1)  # still charged, lease still held
    assert env.ledger(generation_id) == []


@pytest.mark.parametrize("path", [WORKER_FAILED_PATH, WORKER_SWEEP_PATH])
def test_failure_callback_and_sweep_refuse_unsigned_requests(
    env: WorkerEnv, api: Callable[..., Api], path: str
) -> None:
    user = api("basic")
    generation_id = env.create(user.headers)
    body = failure_callback_body(env.job(generation_id))
    env.backdate(generation_id, running=False, age_s=86_400)  # the sweeper would take it

    unsigned = env.http.post(path, content=body, headers={"Content-Type": "application/json"})
    # Validly signed, but for the job route: a signature is bound to its URL.
    replayed = env.signed_post(path, body, signed_url=env.url(WORKER_GENERATE_PATH))

    assert (unsigned.status_code, replayed.status_code) == (401, 401)
    assert env.generation(generation_id)["status"] == "queued"
    assert env.usage(user.headers) == (1, 1)
    # Then fail it properly, so no other test's sweep finds it later.
    assert env.failure_callback(env.job(generation_id)).json() == {"failed": True}


def test_a_sender_clock_ahead_by_seconds_is_tolerated(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    """QStash's clock 30 s ahead of ours (iat/nbf in our future): the job runs at once
    instead of costing a 401 and a QStash retry."""
    user = api("basic")
    generation_id = env.create(user.headers)

    r = env.deliver(env.job(generation_id), now=int(time.time()) + 30)

    assert r.status_code == 200, r.text
    assert r.json() == {"result": "succeeded"}


def test_a_signed_request_is_accepted_once(env: WorkerEnv, api: Callable[..., Api]) -> None:
    """The same token presented again (a replayed request) is refused; QStash itself
    signs every delivery attempt afresh, so a genuine redelivery is never refused."""
    user = api("basic")
    generation_id = env.create(user.headers)
    body = env.job(generation_id).to_body()
    signature = sign_qstash(body, env.url(WORKER_GENERATE_PATH), SIGNING_CURRENT)
    headers = {"Content-Type": "application/json", "Upstash-Signature": signature}

    first = env.http.post(WORKER_GENERATE_PATH, content=body, headers=headers)
    replay = env.http.post(WORKER_GENERATE_PATH, content=body, headers=headers)
    redelivery = env.deliver(env.job(generation_id))

    assert first.json() == {"result": "succeeded"}
    assert replay.status_code == 401, replay.text
    assert replay.json()["error"]["code"] == "UNAUTHENTICATED"
    assert redelivery.json() == {"result": "already_terminal"}


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def _lease_state(env: WorkerEnv, raw: redis.Redis, user_id: str, generation_id: str) -> Any:
    """The lease record (expiry, fence) and the job's member score in its user's semaphore:
    any refresh would move both."""
    keys = env.container.keys
    return (
        raw.hgetall(keys.lease(generation_id)),
        raw.zscore(keys.user_leases(user_id), generation_id),
    )


# The state of the job when its token comes back. A queued job's first script call is the
# replay check, made before its claim; every other state checks with a SET NX before any
# write. Either way a replay is refused (401) and changes nothing.
REPLAY_STATES = ["queued", "running elsewhere", "stale claim", "unknown generation"]


@pytest.mark.parametrize("state", REPLAY_STATES)
def test_a_replayed_token_does_nothing_whatever_the_job_state(
    env: WorkerEnv, api: Callable[..., Api], raw_redis: redis.Redis, state: str
) -> None:
    user = api("basic")
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    if state == "running elsewhere":  # another delivery claimed it a second ago
        env.backdate(generation_id, running=True, age_s=1)
    elif state == "stale claim":  # its worker died long ago: a take-over would claim it
        env.backdate(generation_id, running=True, age_s=3600)
    elif state == "unknown generation":
        job = job.model_copy(update={"generation_id": "00000000-0000-4000-8000-000000000000"})
    body = job.to_body()
    signature = sign_qstash(body, env.url(WORKER_GENERATE_PATH), SIGNING_CURRENT)
    # The token's first presentation got as far as its check, then went no further
    # (Postgres failed, say): its jti is remembered, the job untouched.
    jti = jwt.decode(signature, options={"verify_signature": False})["jti"]
    c = env.container
    assert RedisTokenLedger(c.redis, c.keys).first_use(jti, 300)

    def state_now() -> Any:
        return env.generation(generation_id), _lease_state(
            env, raw_redis, user.user_id, generation_id
        )

    before = state_now()

    replay = env.http.post(
        WORKER_GENERATE_PATH,
        content=body,
        headers={"Content-Type": "application/json", "Upstash-Signature": signature},
    )

    assert replay.status_code == 401, replay.text
    assert replay.json()["error"]["code"] == "UNAUTHENTICATED"
    assert env.fake.calls == 0
    assert state_now() == before  # no claim, no claim number, no lease refreshed or re-taken
    assert env.usage(user.headers) == (1, 1)
    assert env.ledger(generation_id) == []
    if state == "queued":  # a genuine (freshly signed) delivery still runs it
        assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}
        assert env.fake.calls == 1
        return
    # Fail it properly, so no other test's sweep finds it later.
    env.sql(
        "UPDATE generations SET started_at = now() - interval '1 hour' "
        "WHERE id = CAST(:g AS uuid) AND status = 'running'",
        g=generation_id,
    )
    assert env.failure_callback(env.job(generation_id)).json() == {"failed": True}


def test_a_replayed_token_is_refused_before_its_body_is_read(env: WorkerEnv) -> None:
    """Signed, but not a job: the first presentation is QStash's non-retryable 489 and
    spends the token, the replay a 401, exactly as when the replay check came first."""
    body = b'{"not": "a job"}'
    signature = sign_qstash(body, env.url(WORKER_GENERATE_PATH), SIGNING_CURRENT)
    headers = {"Content-Type": "application/json", "Upstash-Signature": signature}

    first = env.http.post(WORKER_GENERATE_PATH, content=body, headers=headers)
    replay = env.http.post(WORKER_GENERATE_PATH, content=body, headers=headers)

    assert first.status_code == 489, first.text
    assert first.headers["Upstash-NonRetryable-Error"] == "true"
    assert replay.status_code == 401, replay.text
    assert replay.json()["error"]["code"] == "UNAUTHENTICATED"
