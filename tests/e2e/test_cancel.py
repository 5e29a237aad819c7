"""POST /v1/generations/{id}/cancel through the real HTTP handling, with the worker's
deliveries signed like QStash's and MiniMax faked on the wire: a queued job is cancelled
at once and refunded, a running one at its worker's next fence point, a finished one is a
409, and the books (``/v1/usage`` vs Postgres) agree after each."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from devtools.fake_minimax import delayed, ok
from tests.e2e.api_support import assert_error
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import WorkerEnv


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    return make_worker_env()


def _cancel(env: WorkerEnv, user: Api, generation_id: str, **headers: str) -> httpx.Response:
    return env.http.post(
        f"/v1/generations/{generation_id}/cancel", headers={**user.headers, **headers}
    )


def test_cancel_a_queued_job_refunds_it_and_its_delivery_does_nothing(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("basic")
    generation_id = env.create(user.headers)
    assert env.usage(user.headers) == (1, 1)

    r = _cancel(env, user, generation_id, **{"Idempotency-Key": "c-1"})

    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["status"], body["variants"]) == (generation_id, "cancelled", [])
    assert body["error"]["code"] == "CANCELLED"
    books = env.assert_books(user.headers, user.user_id)
    assert (books["generations"]["used"], books["hourly"]["used"]) == (0, 0)
    assert books["concurrency"]["in_use"] == 0
    # Basic has one slot: it is free again at once.
    again = env.create(user.headers)
    assert env.deliver(env.job(generation_id)).json() == {"result": "already_terminal"}
    assert user.get(f"/v1/generations/{generation_id}").json()["status"] == "cancelled"
    replay = _cancel(env, user, generation_id, **{"Idempotency-Key": "c-1"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == r.content
    drafts = user.get("/v1/drafts").json()["items"]
    statuses = {d["last_generation"]["id"]: d["last_generation"]["status"] for d in drafts}
    assert statuses[generation_id] == "cancelled"
    # Ended, not left queued: a queued job holds a provider slot the session shares.
    assert _cancel(env, user, again).status_code == 200


def test_cancel_a_running_job_ends_it_cancelled_without_variants(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    env.fake.push(delayed(ok(prompt_tokens=50, completion_tokens=70), 0.5))
    generation_id = env.create(user.headers)
    delivered: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: delivered.append(env.deliver(env.job(generation_id))))
    worker.start()
    try:
        for _ in range(200):
            if env.generation(generation_id)["status"] == "running":
                break
            threading.Event().wait(0.01)
        r = _cancel(env, user, generation_id)
    finally:
        worker.join(10)

    assert r.status_code == 200, r.text
    assert (r.json()["status"], bool(r.json()["cancel_requested_at"])) == ("running", True)
    assert delivered[0].json() == {"result": "cancelled"}
    assert env.generation(generation_id)["status"] == "cancelled"
    assert env.variant_count(generation_id) == 0
    [row] = env.ledger(generation_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["billable"]) == (50, 70, False)
    books = env.assert_books(user.headers, user.user_id)
    assert (books["generations"]["used"], books["hourly"]["used"]) == (0, 1)


def test_cancel_a_finished_job_is_409_and_someone_elses_is_404(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user, other = api("pro"), api("pro")
    env.fake.push(ok())
    generation_id = env.create(user.headers)
    assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}

    err = assert_error(_cancel(env, user, generation_id), 409, "GENERATION_FINISHED")
    assert err["details"] == {"status": "succeeded"}
    assert_error(_cancel(env, other, generation_id), 404, "NOT_FOUND")
    assert_error(_cancel(env, user, "not-a-uuid"), 404, "NOT_FOUND")
    env.assert_books(user.headers, user.user_id)
