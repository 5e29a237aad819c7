"""Account deletion interleaved with writes (SPEC §9): a create racing DELETE /v1/me never
outlives the deletion, and a job running when the account goes still lands its cost in
the ledger, pseudonymised like the rest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from devtools.fake_minimax import Scripted, delayed, malformed, ok
from shared.bootstrap import Container
from tests.e2e.api_support import CREATE, sql
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.usage_truth import assert_usage_matches_postgres

TRIALS = 60
CREATES = 4


def _leftovers(
    database_url: str, r: redis.Redis, container: Container, user_id: str, keys: list[str]
) -> list[str]:
    found = []
    for table in ("users", "drafts", "generations"):
        column = "id" if table == "users" else "owner_id"
        q = f"SELECT count(*) FROM {table} WHERE {column} = :u"
        if sql(database_url, q, u=user_id)[0][0]:
            found.append(table)
    if sql(database_url, "SELECT count(*) FROM usage_ledger WHERE owner_id = :u", u=user_id)[0][0]:
        found.append("ledger under the real subject")
    for key in keys:
        if r.exists(container.keys.idem(user_id, "create", key)):
            found.append(f"idempotency record {key}")
    return found


def _settle(database_url: str, user_id: str) -> None:
    """Wait for any job of ``user_id`` still queued or running (one that survived)."""
    q = "SELECT count(*) FROM generations WHERE owner_id = :u AND status IN ('queued','running')"
    deadline = time.monotonic() + 10
    while sql(database_url, q, u=user_id)[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_create_racing_account_deletion_never_survives_it(
    api: Callable[..., Api], container: Container, database_url: str, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    survived: list[str] = []
    for trial in range(TRIALS):
        a = api("pro")
        keys = [f"race-{trial}-{i}" for i in range(CREATES)]
        barrier = threading.Barrier(CREATES + 1)
        answers: list[httpx.Response] = []

        def create(key: str, a: Api = a, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            answers.append(a.post("/v1/create", CREATE, **{"Idempotency-Key": key}))

        def delete(a: Api = a, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            answers.append(a.client.delete("/v1/me", headers=a.headers))

        threads = [threading.Thread(target=create, args=(k,)) for k in keys]
        threads.append(threading.Thread(target=delete))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _settle(database_url, a.user_id)
        left = _leftovers(database_url, r, container, a.user_id, keys)
        left += [f"{x.status_code} {x.text[:80]}" for x in answers if x.status_code >= 500]
        try:
            # The user is a new one with no plan now: /v1/usage agrees with Postgres.
            assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)
        except AssertionError as exc:
            left.append(str(exc))
        if left:
            survived.append(f"trial {trial}: {left}")
    assert not survived, f"{len(survived)}/{TRIALS} trials left rows behind: {survived}"
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)


@pytest.mark.parametrize(
    ("answer", "billable"),
    [(delayed(ok(), 1.5), True), (delayed(malformed(), 0.8), False)],
    ids=["succeeds", "fails"],
)
def test_a_job_running_when_the_account_is_deleted_lands_its_cost(
    make_worker_env: WorkerEnvFactory,
    api: Callable[..., Api],
    database_url: str,
    answer: Scripted,
    billable: bool,
) -> None:
    env = make_worker_env(default=answer)
    a = api("basic")
    generation_id = env.create(a.headers)
    job = env.job(generation_id)
    delivered: list[httpx.Response] = []
    runner = threading.Thread(target=lambda: delivered.append(env.deliver(job)))
    runner.start()
    env.wait_for(lambda: env.generation(generation_id)["status"] == "running")

    deleted = a.client.delete("/v1/me", headers=a.headers)
    assert deleted.status_code == 202, deleted.text
    runner.join(timeout=30)
    assert len(delivered) == 1
    assert delivered[0].status_code == 200, delivered[0].text

    rows: list[Any] = sql(
        database_url,
        "SELECT owner_id, prompt_tokens, completion_tokens, cost_micro_usd, billable "
        "FROM usage_ledger WHERE generation_id = CAST(:g AS uuid)",
        g=generation_id,
    )
    assert len(rows) == 1, rows
    owner, prompt, completion, cost, charged = rows[0]
    assert charged is billable
    assert owner.startswith("deleted:")
    assert owner != a.user_id
    assert prompt > 0, rows
    assert completion > 0
    if billable:  # a failure's cost is priced as every failure's (from the job's model)
        assert cost > 0, rows
    # The deleted user's other ledger rows (none here) and this one share the pseudonym.
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)
