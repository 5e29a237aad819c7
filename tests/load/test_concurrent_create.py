"""1000 concurrent create attempts for ONE user, from threads and from processes, through
the real local server: exactly the allowed number win, and the books balance afterwards.

Two setups with a predictable admitted count:

- basic (concurrency 1) over a queue that never delivers, so the one admitted lease stays
  held: exactly one 202, everything else a documented 429;
- pro over the real local queue and offline writer, so jobs finish and slots free up
  during the storm: admitted ≤ the hourly burst (120) and == the 202s == the rows in
  Postgres; once the jobs end, the monthly counter equals the non-failed generations and
  no lease is left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.local_server import LocalServer
from shared.bootstrap import Container
from shared.plans import PLANS, PlanName
from tests.e2e.api_support import RecordingQueue, count_rows, derive, sql
from tests.load._hammer import Result, hammer
from tests.support.e2e import Api
from tests.support.load import load_scale, wait_until
from tests.support.usage_truth import assert_usage_matches_postgres

pytestmark = pytest.mark.load

REPO = Path(__file__).resolve().parents[2]
THREADS, PER_THREAD = 50, 10  # in-process: 500 × LOAD_SCALE
PROCESSES, PROC_THREADS, PROC_PER_THREAD = 4, 5, 25  # 4 processes: 500 × LOAD_SCALE
LIMIT_CODES = {"CONCURRENCY_LIMIT", "HOURLY_LIMIT_EXCEEDED", "MONTHLY_QUOTA_EXCEEDED"}
UNAVAILABLE_CODES = {"SERVICE_UNAVAILABLE", "PROVIDER_BUSY"}


def _storm(url: str, token: str) -> list[Result]:
    """Threads here and in ``PROCESSES`` child processes, all released at the same instant."""
    scale = load_scale()
    start_at = time.time() + 3.0  # the children need ~1 s to import httpx
    args = [url, token, str(PROC_THREADS), str(PROC_PER_THREAD * scale), str(start_at)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.load._hammer", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    results = hammer(url, token, THREADS, PER_THREAD * scale, start_at)
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
        results.extend(tuple(r) for r in json.loads(out))  # type: ignore[misc]
    expected = (THREADS * PER_THREAD + PROCESSES * PROC_THREADS * PROC_PER_THREAD) * scale
    assert len(results) == expected
    return results


def _assert_documented(results: list[Result]) -> Counter[int]:
    """Every answer is a 202 or a documented 429/409/503 (with Retry-After where due)."""
    statuses = Counter(status for status, _, _ in results)
    for status, code, retry_after in results:
        assert status in (202, 409, 429, 503), (status, code)
        if status == 429:
            assert code in LIMIT_CODES, code
        if status == 503:
            assert code in UNAVAILABLE_CODES, code
        if status == 409:
            assert code == "IDEMPOTENCY_IN_PROGRESS", code
        if status in (429, 503):
            assert retry_after is not None
            assert int(retry_after) >= 1
    return statuses


@pytest.mark.usefixtures("pinned_clock")  # one hour for the whole storm
def test_basic_user_storm_admits_exactly_one(
    server: LocalServer,
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    api: Callable[..., Api],
    use_container: Callable[[Container], Container],
) -> None:
    queue = RecordingQueue()
    use_container(derive(container, base_env, queue=queue))
    user = api("basic")  # concurrency 1; the job is not delivered, so its lease stays held

    results = _storm(server.url, user.headers["Authorization"].removeprefix("Bearer "))

    statuses = _assert_documented(results)
    assert statuses[202] == 1, statuses
    assert statuses[429] == len(results) - 1, statuses  # no 503: the storm is no outage
    assert count_rows(database_url, "generations", user.user_id) == 1
    assert count_rows(database_url, "drafts", user.user_id) == 1
    usage = assert_usage_matches_postgres(user.get("/v1/usage"), database_url, user.user_id)
    assert usage["generations"]["used"] == 1
    assert usage["hourly"]["used"] == 1
    assert usage["concurrency"]["in_use"] == 1
    # Ended, not left queued: a queued job holds a provider slot the session shares.
    (job,) = queue.jobs
    queue.deliver_to(container.queue)
    user.wait(job.generation_id)


@pytest.mark.usefixtures("pinned_clock")  # one hour for the whole storm
def test_pro_user_storm_with_delivery_balances_the_books(
    server: LocalServer,
    container: Container,
    database_url: str,
    api: Callable[..., Api],
) -> None:
    user = api("pro")  # the session container: local queue delivering to the offline writer

    results = _storm(server.url, user.headers["Authorization"].removeprefix("Bearer "))

    statuses = _assert_documented(results)
    admitted = statuses[202]
    assert 1 <= admitted <= PLANS[PlanName.PRO].generations_per_hour, statuses
    assert count_rows(database_url, "generations", user.user_id) == admitted
    assert count_rows(database_url, "drafts", user.user_id) == admitted

    def all_terminal() -> bool:
        rows = sql(
            database_url,
            "SELECT count(*) FROM generations WHERE owner_id = :o "
            "AND status IN ('queued', 'running')",
            o=user.user_id,
        )
        return int(rows[0][0]) == 0

    wait_until(all_terminal, 60 * load_scale(), "every admitted job finished")
    not_failed = sql(
        database_url,
        "SELECT count(*) FROM generations WHERE owner_id = :o AND status <> 'failed'",
        o=user.user_id,
    )[0][0]
    usage = assert_usage_matches_postgres(user.get("/v1/usage"), database_url, user.user_id)
    assert usage["generations"]["used"] == not_failed
    assert usage["concurrency"]["in_use"] == 0
    assert usage["hourly"]["used"] == admitted
