"""Idempotency-Key over HTTP (SPEC §3): byte-for-byte replay, key reuse, in-flight keys,
5xx answers that do not pin their key, and N concurrent identical requests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from shared.bootstrap import Container
from tests.e2e.api_support import (
    CREATE,
    FailingQueue,
    GatedQueue,
    InsertFailingDb,
    assert_error,
    count_rows,
    derive,
    raw,
)
from tests.support.clock import FixedClock
from tests.support.e2e import Api
from tests.support.usage_truth import assert_usage_matches_postgres

KEY = {"Idempotency-Key": "req-2026-11-27/create#1"}


def _usage(a: Api) -> dict[str, Any]:
    body: dict[str, Any] = a.get("/v1/usage").json()
    return body


@pytest.mark.usefixtures("pinned_clock")
def test_same_key_same_body_replays_byte_for_byte_without_charging(
    api: Callable[..., Api], database_url: str
) -> None:
    a = api("standard")
    first = a.post("/v1/create", {**CREATE, "variants": 2}, **KEY)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    a.wait(first.json()["generation_id"])
    usage = _usage(a)
    # Same JSON value, different key order and spacing: the same request.
    again = a.client.post(
        "/v1/create",
        content=b'{ "variants": 2, "platform": "tiktok",\n'
        b' "brief": "3 reasons to drink water, upbeat" }',
        headers={**a.headers, **KEY, "Content-Type": "application/json"},
    )
    for replay in (again, a.post("/v1/create", {**CREATE, "variants": 2}, **KEY)):
        assert replay.status_code == 202
        assert replay.content == first.content
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.headers["Location"] == first.headers["Location"]
        assert replay.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert _usage(a) == usage
    assert count_rows(database_url, "drafts", a.user_id) == 1
    assert count_rows(database_url, "generations", a.user_id) == 1


@pytest.mark.usefixtures("pinned_clock")
def test_same_key_different_body_is_422_and_keys_are_per_endpoint_and_user(
    api: Callable[..., Api], database_url: str
) -> None:
    a, b = api("standard"), api("standard")
    first = a.post("/v1/create", CREATE, **KEY)
    assert first.status_code == 202
    gen = a.wait(first.json()["generation_id"])
    err = assert_error(
        a.post("/v1/create", {**CREATE, "brief": "something else"}, **KEY),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert err["details"] == {}
    # The same key on another endpoint or for another user is a different key.
    r = a.post(
        "/v1/regenerate",
        {
            "draft_id": first.json()["draft_id"],
            "mode": "targeted",
            "variant_id": gen["variants"][0]["id"],
        },
        **KEY,
    )
    assert r.status_code == 202, r.text
    a.wait(r.json()["generation_id"])
    r = b.post("/v1/create", CREATE, **KEY)
    assert r.status_code == 202
    assert "Idempotent-Replayed" not in r.headers
    b.wait(r.json()["generation_id"])
    assert count_rows(database_url, "drafts", a.user_id) == 1
    assert _usage(a)["generations"]["used"] == 2


def test_key_still_in_flight_is_409_then_replays(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    use_container: Callable[[Container], Container],
) -> None:
    a = api("standard")
    queue = GatedQueue()  # the first request blocks inside enqueue, after admission
    use_container(derive(container, base_env, queue=queue))
    results: list[httpx.Response] = []
    first = threading.Thread(target=lambda: results.append(a.post("/v1/create", CREATE, **KEY)))
    first.start()
    try:
        assert queue.entered.wait(10)
        assert_error(a.post("/v1/create", CREATE, **KEY), 409, "IDEMPOTENCY_IN_PROGRESS")
    finally:
        queue.open()
        first.join(15)
    [original] = results
    assert original.status_code == 202, original.text
    replay = a.post("/v1/create", CREATE, **KEY)
    assert replay.content == original.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert count_rows(database_url, "generations", a.user_id) == 1
    queue.deliver_to(container.queue)
    a.wait(original.json()["generation_id"])
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)


@pytest.mark.usefixtures("pinned_clock")
@pytest.mark.parametrize(
    "fault",
    [
        "insert",
        "enqueue",
    ],
)
def test_a_5xx_does_not_pin_its_key(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    use_container: Callable[[Container], Container],
    fault: str,
) -> None:
    a = api("basic")
    broken = (
        {"db": InsertFailingDb(container.db)} if fault == "insert" else {"queue": FailingQueue()}
    )
    use_container(derive(container, base_env, **broken))
    assert_error(a.post("/v1/create", CREATE, **KEY), 503, "SERVICE_UNAVAILABLE")
    use_container(container)  # the fault is fixed
    retry = a.post("/v1/create", CREATE, **KEY)
    assert retry.status_code == 202, retry.text
    assert "Idempotent-Replayed" not in retry.headers
    assert a.wait(retry.json()["generation_id"])["status"] == "succeeded"
    replay = a.post("/v1/create", CREATE, **KEY)
    assert replay.content == retry.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _usage(a)["generations"]["used"] == 1
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)


def _hammer(
    base_url: str, n: int, path: str, body: dict[str, Any], headers: dict[str, str]
) -> list[httpx.Response]:
    start = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=base_url, timeout=30) as c:
            start.wait()
            return c.post(path, json=body, headers=headers)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.usefixtures("pinned_clock")
@pytest.mark.parametrize("plan", ["basic", "pro"])
def test_twenty_concurrent_identical_creates_make_one_draft(
    api: Callable[..., Api], database_url: str, plan: str
) -> None:
    a = api(plan)
    responses = _hammer(str(a.client.base_url), 20, "/v1/create", CREATE, {**a.headers, **KEY})
    accepted = [r for r in responses if r.status_code == 202]
    assert {r.status_code for r in responses} <= {202, 409}, [r.text for r in responses]
    assert accepted
    assert {r.content for r in accepted} == {accepted[0].content}
    assert sum("Idempotent-Replayed" not in r.headers for r in accepted) <= 1
    for r in responses:
        if r.status_code == 409:
            assert_error(r, 409, "IDEMPOTENCY_IN_PROGRESS")
    assert count_rows(database_url, "drafts", a.user_id) == 1
    assert count_rows(database_url, "generations", a.user_id) == 1
    a.wait(accepted[0].json()["generation_id"])
    usage = assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)
    assert usage["generations"]["used"] == 1
    assert usage["concurrency"]["in_use"] == 0


# ---- library save ----------------------------------------------------------------------

ASSET = {"raw": raw("Drink water"), "platform": "tiktok", "title": "Water", "tags": ["Health"]}


def test_library_save_replays_and_rejects_a_reused_key(
    api: Callable[..., Api], database_url: str
) -> None:
    a = api()
    first = a.post("/v1/library/assets", ASSET, **KEY)
    assert first.status_code == 201, first.text
    replay = a.post("/v1/library/assets", ASSET, **KEY)
    assert replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert_error(
        a.post("/v1/library/assets", {**ASSET, "title": "Other"}, **KEY),
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert count_rows(database_url, "assets", a.user_id) == 1
    assert len(a.get("/v1/library/assets").json()["items"]) == 1
    # Without a key every save is a new asset.
    assert a.post("/v1/library/assets", ASSET).status_code == 201
    assert count_rows(database_url, "assets", a.user_id) == 2


def test_twenty_concurrent_identical_saves_make_one_asset(
    api: Callable[..., Api], database_url: str
) -> None:
    a = api()
    responses = _hammer(
        str(a.client.base_url), 20, "/v1/library/assets", ASSET, {**a.headers, **KEY}
    )
    assert {r.status_code for r in responses} <= {201, 409}, [r.text for r in responses]
    created = [r for r in responses if r.status_code == 201]
    assert created
    assert {r.content for r in created} == {created[0].content}
    for r in responses:
        if r.status_code == 409:
            assert_error(r, 409, "IDEMPOTENCY_IN_PROGRESS")
    assert count_rows(database_url, "assets", a.user_id) == 1


def test_keys_of_two_users_never_collide(
    client: httpx.Client,
    token: Callable[..., str],
    new_user: Callable[[], str],
    database_url: str,
) -> None:
    # Keys joined with ":" made user "<v>:create:x" sending "k" read the record of user
    # "<v>" sending "x:create:k", and replayed that user's 202 (their ids) to a stranger.
    vic = new_user()
    users = [(vic, "x:create:k"), (f"{vic}:create:x", "k")]
    answers = []
    for user_id, key in users:
        a = Api(client, user_id, token(user_id), token("admin-" + user_id, admin=True))
        a.grant("standard")
        r = a.post("/v1/create", CREATE, **{"Idempotency-Key": key})
        assert r.status_code == 202, r.text
        assert "Idempotent-Replayed" not in r.headers
        assert a.get(f"/v1/generations/{r.json()['generation_id']}").status_code == 200
        a.wait(r.json()["generation_id"])
        assert_usage_matches_postgres(a.get("/v1/usage"), database_url, user_id)
        answers.append(r.json()["generation_id"])
    assert answers[0] != answers[1]


def _flush(redis_url: str, prefix: str) -> int:
    """Drop every key under ``prefix``: what a Redis failover without persistence does."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        return int(client.delete(*names)) if names else 0
    finally:
        client.close()


@pytest.mark.parametrize("mode", ["create", "regen_full"])
def test_replay_found_in_postgres_gives_every_unit_back(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    redis_url: str,
    run_prefix: str,
    use_container: Callable[[Container], Container],
    mode: str,
) -> None:
    # The reproduction: create with a key, Redis loses its data, the same request
    # again. The new admission charges (counters reseeded from Postgres), its insert meets
    # the first request's row, and the abort must give back every unit, the hour included.
    prefix = f"{run_prefix}lost{uuid.uuid4().hex[:6]}"
    # One pinned instant: the hour cannot turn between the two usage reads.
    use_container(derive(container, base_env, {"REDIS_KEY_PREFIX": prefix}, clock=FixedClock()))
    a = api("pro")
    created = a.post("/v1/create", CREATE)
    assert created.status_code == 202, created.text
    a.wait(created.json()["generation_id"])
    path, body = "/v1/create", CREATE
    if mode == "regen_full":
        path, body = "/v1/regenerate", {"draft_id": created.json()["draft_id"], "mode": "full"}
    first = a.post(path, body, **KEY)
    assert first.status_code == 202, first.text
    a.wait(first.json()["generation_id"])
    before = assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)

    assert _flush(redis_url, prefix) > 0

    replay = a.post(path, body, **KEY)
    assert replay.status_code == 202, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    after = assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)
    for meter in ("generations", "hourly", "full_regens", "concurrency"):
        assert after[meter] == before[meter], meter


@pytest.mark.usefixtures("pinned_clock")
def test_a_keyed_regenerate_replays_after_its_job_and_after_its_draft_is_gone(
    api: Callable[..., Api], database_url: str
) -> None:
    """The stored answer of a regenerate key comes first (SPEC §3): on an idle draft it is
    replayed by the admission itself, on a deleted draft (404 otherwise) by the lookup
    made before that refusal; another body under the key is 422 either way."""
    a = api("pro")
    created = a.post("/v1/create", CREATE)
    assert created.status_code == 202, created.text
    a.wait(created.json()["generation_id"])
    draft_id = created.json()["draft_id"]
    body = {"draft_id": draft_id, "mode": "full"}
    key = {"Idempotency-Key": f"regen-{uuid.uuid4().hex}"}
    first = a.post("/v1/regenerate", body, **key)
    assert first.status_code == 202, first.text
    a.wait(first.json()["generation_id"])
    usage = _usage(a)

    idle = a.post("/v1/regenerate", body, **key)
    assert idle.status_code == 202, idle.text
    assert idle.headers["Idempotent-Replayed"] == "true"
    assert idle.json() == first.json()
    other = {**body, "instructions": "shorter"}
    assert_error(a.post("/v1/regenerate", other, **key), 422, "IDEMPOTENCY_KEY_REUSED")

    assert a.client.delete(f"/v1/drafts/{draft_id}", headers=a.headers).status_code == 204
    gone = a.post("/v1/regenerate", body, **key)
    assert gone.status_code == 202, gone.text
    assert gone.headers["Idempotent-Replayed"] == "true"
    assert gone.json() == first.json()
    assert_error(a.post("/v1/regenerate", other, **key), 422, "IDEMPOTENCY_KEY_REUSED")
    assert _usage(a) == usage
    assert count_rows(database_url, "generations", a.user_id) == 2
