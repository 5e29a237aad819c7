"""Plans and limits over HTTP: plan features (403), Pro Boost, every 429, PROVIDER_BUSY,
and the undo of an admission when the transaction or the enqueue fails afterwards."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from shared.bootstrap import Container
from shared.clock import utcnow
from shared.db import GenerationKind
from shared.redis.keys import hour_label, seconds_until_hour_end, seconds_until_month_end
from tests.e2e.api_support import (
    CREATE,
    FailingQueue,
    InsertFailingDb,
    RecordingQueue,
    assert_error,
    assert_limit_details,
    count_rows,
    derive,
    seed_charged,
    sql,
)
from tests.support.e2e import Api
from tests.support.usage_truth import assert_usage_matches_postgres


def _created(a: Api, **body: Any) -> dict[str, Any]:
    r = a.post("/v1/create", {**CREATE, **body})
    assert r.status_code == 202, r.text
    created: dict[str, Any] = r.json()
    return created


def _finished_draft(a: Api, variants: int = 1) -> tuple[str, dict[str, Any]]:
    created = _created(a, variants=variants)
    gen = a.wait(created["generation_id"])
    assert gen["status"] == "succeeded", gen
    return created["draft_id"], gen


# ---- 403 plan features and the Pro Boost -----------------------------------------------


@pytest.mark.usefixtures("pinned_clock")
def test_basic_cannot_ask_two_variants_or_a_full_regen(api: Callable[..., Api]) -> None:
    a = api("basic")
    err = assert_error(
        a.post("/v1/create", {**CREATE, "variants": 2}), 403, "PLAN_FEATURE_UNAVAILABLE"
    )
    assert err["details"].get("limit") == 1
    draft_id, _gen = _finished_draft(a)
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    assert_error(r, 403, "PLAN_FEATURE_UNAVAILABLE")
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full", "variants": 1})
    assert_error(r, 403, "PLAN_FEATURE_UNAVAILABLE")
    usage = a.get("/v1/usage").json()
    assert usage["generations"]["used"] == 1  # refusals consumed nothing
    assert usage["hourly"]["used"] == 1
    assert usage["concurrency"]["in_use"] == 0


def test_pro_boost_lifts_basic_at_once_and_drops_back_when_it_expires(
    api: Callable[..., Api], container: Container, database_url: str
) -> None:
    a = api("basic")
    assert_error(a.post("/v1/create", {**CREATE, "variants": 5}), 403, "PLAN_FEATURE_UNAVAILABLE")
    r = a.boost(30)
    assert r.status_code == 200, r.text
    usage = a.get("/v1/usage").json()
    assert (usage["plan"], usage["effective_plan"]) == ("basic", "pro")
    assert usage["generations"]["limit"] == 900

    created = _created(a, variants=5)  # the very next request sees pro limits
    assert len(a.wait(created["generation_id"])["variants"]) == 5
    draft_id = created["draft_id"]
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full", "variants": 4})
    assert r.status_code == 202, r.text
    a.wait(r.json()["generation_id"])

    # Expiry: the boost row is moved into the past in Postgres (what time passing does)
    # and the plan cache is invalidated the way every boost change does. This exercises
    # the real expiry rule without moving script time for the whole shared enforcer.
    sql(
        database_url,
        "UPDATE boosts SET expires_at = now() - interval '1 second' WHERE user_id = :u "
        "RETURNING user_id",
        u=a.user_id,
    )
    container.enforcer.invalidate_plan(a.user_id)
    usage = a.get("/v1/usage").json()
    assert (usage["plan"], usage["effective_plan"]) == ("basic", "basic")
    assert usage["generations"] == {**usage["generations"], "used": 2, "limit": 60}
    assert_error(a.post("/v1/create", {**CREATE, "variants": 5}), 403, "PLAN_FEATURE_UNAVAILABLE")
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    assert_error(r, 403, "PLAN_FEATURE_UNAVAILABLE")
    assert a.post("/v1/create", CREATE).status_code == 202


# ---- 429 -------------------------------------------------------------------------------


@pytest.mark.usefixtures("pinned_clock")
def test_61st_basic_generation_is_refused_with_counter_seeded_from_postgres(
    api: Callable[..., Api], container: Container
) -> None:
    a = api("basic")
    # 60 charged generations this month exist only in Postgres: no Redis counter yet.
    seed_charged(container, a.user_id, count=60)
    err = assert_error(a.post("/v1/create", CREATE), 429, "MONTHLY_QUOTA_EXCEEDED")
    assert_limit_details(err, limit=60, used=60)
    retry_after = int(a.post("/v1/create", CREATE).headers["Retry-After"])
    assert retry_after == seconds_until_month_end(container.now())
    usage = a.get("/v1/usage").json()
    assert usage["generations"]["used"] == 60
    assert usage["generations"]["remaining"] == 0
    assert usage["concurrency"]["in_use"] == 0


@pytest.mark.usefixtures("pinned_clock")
def test_11th_basic_generation_in_an_hour_is_refused(
    api: Callable[..., Api], container: Container
) -> None:
    a = api("basic")  # the server's clock is pinned: the seeded hour is the admission's
    seed_charged(container, a.user_id, count=10, hour=hour_label(container.now()))
    r = a.post("/v1/create", CREATE)
    err = assert_error(r, 429, "HOURLY_LIMIT_EXCEEDED")
    assert_limit_details(err, limit=10, used=10)
    assert int(r.headers["Retry-After"]) == seconds_until_hour_end(container.now())
    assert a.get("/v1/usage").json()["generations"]["used"] == 10  # the refusal charged nothing


@pytest.mark.usefixtures("pinned_clock")
def test_standard_31st_full_regen_is_refused(api: Callable[..., Api], container: Container) -> None:
    a = api("standard")
    seed_charged(container, a.user_id, count=30, kind=GenerationKind.REGEN_FULL, plan="standard")
    draft_id, gen = _finished_draft(a, variants=2)
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    err = assert_error(r, 429, "FULL_REGEN_CAP_EXCEEDED")
    assert_limit_details(err, limit=30, used=30)
    assert int(r.headers["Retry-After"]) == seconds_until_month_end(container.now())
    # Targeted regeneration is not capped.
    r = a.post(
        "/v1/regenerate",
        {"draft_id": draft_id, "mode": "targeted", "variant_id": gen["variants"][0]["id"]},
    )
    assert r.status_code == 202, r.text
    a.wait(r.json()["generation_id"])
    usage = a.get("/v1/usage").json()
    assert usage["full_regens"] == {"used": 30, "limit": 30}
    assert usage["generations"]["used"] == 32


def test_second_concurrent_basic_job_is_refused(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
) -> None:
    a = api("basic")
    queue = RecordingQueue()  # the first job stays queued: its lease stays held
    use_container(derive(container, base_env, queue=queue))
    first = _created(a)
    r = a.post("/v1/create", CREATE)
    err = assert_error(r, 429, "CONCURRENCY_LIMIT")
    assert err["details"]["limit"] == 1
    assert err["details"]["used"] == 1
    usage = a.get("/v1/usage").json()
    assert usage["concurrency"] == {"in_use": 1, "limit": 1}
    assert usage["generations"]["used"] == 1
    queue.deliver_to(container.queue)
    a.wait(first["generation_id"])
    assert a.get("/v1/usage").json()["concurrency"]["in_use"] == 0
    again = a.post("/v1/create", CREATE)
    assert again.status_code == 202  # free again
    # Ended, not left queued: a queued job holds a provider slot the session shares.
    queue.deliver_to(container.queue)
    a.wait(again.json()["generation_id"])


def test_regenerating_a_draft_twice_quickly_hits_the_cooldown(api: Callable[..., Api]) -> None:
    a = api("basic")
    draft_id, gen = _finished_draft(a)
    body = {"draft_id": draft_id, "mode": "targeted", "variant_id": gen["variants"][0]["id"]}
    r = a.post("/v1/regenerate", body)
    assert r.status_code == 202, r.text
    assert a.wait(r.json()["generation_id"])["status"] == "succeeded"
    r = a.post("/v1/regenerate", body)
    err = assert_error(r, 429, "COOLDOWN_ACTIVE")
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= 20
    resets_at = datetime.fromisoformat(err["details"]["resets_at"].replace("Z", "+00:00"))
    assert 0 < (resets_at - utcnow()).total_seconds() <= 20
    # The cooldown is per draft: another draft of the same user regenerates at once.
    other_draft, other_gen = _finished_draft(a)
    r = a.post(
        "/v1/regenerate",
        {"draft_id": other_draft, "mode": "targeted", "variant_id": other_gen["variants"][0]["id"]},
    )
    assert r.status_code == 202, r.text
    a.wait(r.json()["generation_id"])
    assert a.get("/v1/usage").json()["generations"]["used"] == 4


# ---- 409 -------------------------------------------------------------------------------


def test_regenerating_a_draft_with_a_job_in_flight_is_409(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
) -> None:
    a = api("standard")
    queue = RecordingQueue()
    use_container(derive(container, base_env, queue=queue))
    created = _created(a, variants=2)
    r = a.post("/v1/regenerate", {"draft_id": created["draft_id"], "mode": "full"})
    assert_error(r, 409, "GENERATION_IN_PROGRESS")
    assert a.get("/v1/usage").json()["generations"]["used"] == 1
    queue.deliver_to(container.queue)
    a.wait(created["generation_id"])


# ---- 503 -------------------------------------------------------------------------------


def test_provider_semaphore_full_is_503_provider_busy(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    run_prefix: str,
    use_container: Callable[[Container], Container],
) -> None:
    holder, other = api("standard"), api("pro")
    queue = RecordingQueue()
    # Its own key prefix: the provider semaphore (shared by every user) is this test's alone.
    env = {
        "PROVIDER_CAP_INTERACTIVE": "1",
        "REDIS_KEY_PREFIX": f"{run_prefix}p{secrets.token_hex(3)}",
    }
    use_container(derive(container, base_env, env, queue=queue))
    held = _created(holder)
    r = other.post("/v1/create", CREATE)
    err = assert_error(r, 503, "PROVIDER_BUSY")
    assert err["details"]["limit"] == 1
    usage = other.get("/v1/usage").json()
    assert usage["generations"]["used"] == 0
    assert usage["concurrency"]["in_use"] == 0
    queue.deliver_to(container.queue)  # the worker runs under this container: cap 1
    holder.wait(held["generation_id"])
    assert other.post("/v1/create", CREATE).status_code == 202
    queue.deliver_to(container.queue)


def _usage(a: Api) -> dict[str, Any]:
    body: dict[str, Any] = a.get("/v1/usage").json()
    return body


@pytest.mark.usefixtures("pinned_clock")
def test_failed_insert_after_admission_refunds_and_releases(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    use_container: Callable[[Container], Container],
) -> None:
    a = api("standard")
    _finished_draft(a)
    before = _usage(a)
    use_container(derive(container, base_env, db=InsertFailingDb(container.db)))
    r = a.post("/v1/create", CREATE, **{"Idempotency-Key": "insert-fails"})
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    after = _usage(a)
    assert after["generations"] == before["generations"]
    assert after["concurrency"] == {"in_use": 0, "limit": 2}
    assert count_rows(database_url, "drafts", a.user_id) == 1  # the draft insert rolled back
    assert count_rows(database_url, "generations", a.user_id) == 1
    assert after["hourly"] == before["hourly"]  # no generation: the hourly unit is back too
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)


@pytest.mark.usefixtures("pinned_clock")
def test_failed_enqueue_refunds_releases_and_fails_the_generation(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    use_container: Callable[[Container], Container],
) -> None:
    a = api("standard")
    draft_id, _ = _finished_draft(a, variants=2)
    before = _usage(a)
    queue = FailingQueue()
    use_container(derive(container, base_env, queue=queue))
    r = a.post("/v1/create", CREATE)
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    assert queue.calls == 2
    after = assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)
    assert after["generations"] == before["generations"]
    assert after["hourly"] == before["hourly"]  # neither job ran: both hourly units are back
    assert after["full_regens"] == before["full_regens"]
    assert after["concurrency"]["in_use"] == 0
    rows = sql(
        database_url,
        "SELECT kind, status, error_code FROM generations WHERE owner_id = :o AND status <> "
        "'succeeded' ORDER BY created_at",
        o=a.user_id,
    )
    assert rows == [
        ["create", "failed", "ENQUEUE_FAILED"],
        ["regen_full", "failed", "ENQUEUE_FAILED"],
    ]
    use_container(container)
    r = a.post("/v1/create", CREATE)
    assert r.status_code == 202, r.text
    a.wait(r.json()["generation_id"])
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)


def test_retry_after_a_failed_regen_enqueue_is_not_blocked_by_the_cooldown(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
) -> None:
    a = api("standard")
    draft_id, _ = _finished_draft(a, variants=2)
    use_container(derive(container, base_env, queue=FailingQueue()))
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    time.sleep(int(r.headers["Retry-After"]))
    use_container(container)
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    assert r.status_code == 202, r.text
    a.wait(r.json()["generation_id"])
