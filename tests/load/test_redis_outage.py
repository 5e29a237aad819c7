"""Redis killed mid-run (a private ``redis-server`` the test owns, no persistence).

Paid limits fail closed: while Redis is down, create answers 503 SERVICE_UNAVAILABLE
with Retry-After and writes nothing to Postgres. When Redis comes back (empty, same
port), the very next create succeeds with no server restart: the pool reconnects, the
plan cache and the usage counters are reseeded from Postgres, so the month stays right.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.bootstrap import Container
from tests.e2e.api_support import CREATE, RecordingQueue, assert_error, count_rows, derive
from tests.support.e2e import Api
from tests.support.load import PrivateRedis
from tests.support.usage_truth import assert_usage_matches_postgres

pytestmark = pytest.mark.load


def _rows(database_url: str, user: Api) -> tuple[int, int]:
    return (
        count_rows(database_url, "drafts", user.user_id),
        count_rows(database_url, "generations", user.user_id),
    )


@pytest.mark.usefixtures("pinned_clock")  # the hourly count below is one hour's
def test_redis_killed_then_restarted(
    private_redis: PrivateRedis,
    container: Container,
    base_env: dict[str, str],
    run_prefix: str,
    database_url: str,
    api: Callable[..., Api],
    use_container: Callable[[Container], Container],
) -> None:
    queue = RecordingQueue()
    env = {"REDIS_URL": private_redis.url, "REDIS_KEY_PREFIX": f"{run_prefix}rk"}
    use_container(derive(container, base_env, env, queue=queue))
    user = api("pro")
    created = user.post("/v1/create", CREATE)
    assert created.status_code == 202, created.text
    assert _rows(database_url, user) == (1, 1)

    private_redis.kill()

    for _ in range(3):  # not just the first request after the loss: every one
        assert_error(user.post("/v1/create", CREATE), 503, "SERVICE_UNAVAILABLE")
    assert_error(user.get("/v1/usage"), 503, "SERVICE_UNAVAILABLE")
    assert user.get("/readyz").status_code == 503
    assert _rows(database_url, user) == (1, 1)  # nothing written while Redis was down
    assert len(queue.jobs) == 1

    private_redis.start()  # same port, empty: what a failover without persistence gives

    r = user.post("/v1/create", CREATE)
    assert r.status_code == 202, r.text
    assert _rows(database_url, user) == (2, 2)
    usage = user.get("/v1/usage").json()
    assert usage["generations"]["used"] == 2  # reseeded from Postgres: 1 before + 1 now
    assert usage["hourly"]["used"] == 2
    assert usage["effective_plan"] == "pro"
    assert user.get("/readyz").status_code == 200

    # The first job's lease died with Redis; its delivery takes a slot again (the worker
    # re-acquires an expired lease) and both jobs end: the books then match Postgres.
    queue.deliver_to(container.queue)
    for job in (created.json(), r.json()):
        assert user.wait(job["generation_id"])["status"] == "succeeded"
    assert_usage_matches_postgres(user.get("/v1/usage"), database_url, user.user_id)
