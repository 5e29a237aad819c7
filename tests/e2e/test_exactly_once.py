"""Exactly once, nothing left behind: keyed retries while their job runs, keyed saves after
Redis lost the record, 5xx-free hostile input on the admin and worker routes, purges that
leave saved assets as they were, and the smaller contract rules (RFC 9110 If-Match lists,
bodies of bodiless POSTs, titles, tags, searches with no word, ETag on 201, RateLimit-*).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devtools.fake_minimax import ok
from shared.bootstrap import Container
from shared.queue import WORKER_FAILED_PATH, WORKER_GENERATE_PATH
from shared.services import lifecycle
from tests.e2e.api_support import CREATE, RecordingQueue, assert_error, derive, raw, sql
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.usage_truth import assert_usage_matches_postgres
from tests.support.worker_env import WorkerEnv

REGEN_KEY = "regen-retry-while-running"


def _finished_draft(a: Api) -> tuple[str, dict[str, Any]]:
    r = a.post("/v1/create", CREATE)
    assert r.status_code == 202, r.text
    gen = a.wait(r.json()["generation_id"])
    assert gen["status"] == "succeeded", gen
    return r.json()["draft_id"], gen


def _generations_of(database_url: str, draft_id: str) -> int:
    q = "SELECT count(*) FROM generations WHERE draft_id = CAST(:d AS uuid)"
    return int(sql(database_url, q, d=draft_id)[0][0])


# ---- 1. idempotency is decided first ---------------------------------------------------


def test_regenerate_retried_while_its_job_runs_replays_the_202(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
    database_url: str,
) -> None:
    a = api("standard")
    draft_id, _ = _finished_draft(a)
    queue = RecordingQueue()  # the regeneration stays queued: its draft stays busy
    use_container(derive(container, base_env, queue=queue))
    body = {"draft_id": draft_id, "mode": "full"}

    first = a.post("/v1/regenerate", body, **{"Idempotency-Key": REGEN_KEY})
    assert first.status_code == 202, first.text
    retry = a.post("/v1/regenerate", body, **{"Idempotency-Key": REGEN_KEY})
    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content

    # Redis lost the record while the job still runs: Postgres holds the request.
    for scope in ("regenerate",):
        container.redis.delete(container.keys.idem(a.user_id, scope, REGEN_KEY))
    again = a.post("/v1/regenerate", body, **{"Idempotency-Key": REGEN_KEY})
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = a.post("/v1/regenerate", {**body, "variants": 2}, **{"Idempotency-Key": REGEN_KEY})
    assert_error(other, 422, "IDEMPOTENCY_KEY_REUSED")
    # A different key on the busy draft is still the SPEC's 409.
    busy = a.post("/v1/regenerate", body, **{"Idempotency-Key": "another"})
    assert_error(busy, 409, "GENERATION_IN_PROGRESS")

    assert _generations_of(database_url, draft_id) == 2
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)
    # Ended, not left queued: a queued job holds a provider slot the session shares.
    queue.deliver_to(container.queue)
    a.wait(first.json()["generation_id"])


CONCURRENT_TRIALS = 8
CONCURRENT_RETRIES = 6


def test_concurrent_keyed_regenerates_never_conflict_with_their_own_job(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
    database_url: str,
) -> None:
    """Trials x identical keyed regenerates at once: each answer is the 202 (fresh or
    replayed) or 409 IDEMPOTENCY_IN_PROGRESS, never GENERATION_IN_PROGRESS."""
    a = api("pro")
    queue = RecordingQueue()
    use_container(derive(container, base_env, queue=queue))
    wrong: list[str] = []
    for trial in range(CONCURRENT_TRIALS):
        created = a.post("/v1/create", CREATE)
        assert created.status_code == 202, created.text
        queue.deliver_to(container.queue)
        a.wait(created.json()["generation_id"])
        draft_id = created.json()["draft_id"]
        body = {"draft_id": draft_id, "mode": "full"}
        key = {"Idempotency-Key": f"concurrent-{trial}"}
        barrier = threading.Barrier(CONCURRENT_RETRIES)
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def send(body: dict[str, Any] = body, key: dict[str, str] = key) -> None:
            barrier.wait()
            r = a.post("/v1/regenerate", body, **key)
            with lock:
                answers.append(r)

        threads = [threading.Thread(target=send) for _ in range(CONCURRENT_RETRIES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = {r.json()["generation_id"] for r in answers if r.status_code == 202}
        codes = sorted(
            r.json()["error"]["code"] if r.status_code >= 400 else str(r.status_code)
            for r in answers
        )
        if len(accepted) != 1 or set(codes) - {"202", "IDEMPOTENCY_IN_PROGRESS"}:
            wrong.append(f"trial {trial}: {codes}")
        replay = a.post("/v1/regenerate", body, **key)
        assert replay.status_code == 202, replay.text
        assert _generations_of(database_url, draft_id) == 2
        queue.deliver_to(container.queue)
        a.wait(replay.json()["generation_id"])
    assert not wrong, f"{len(wrong)}/{CONCURRENT_TRIALS} trials: {wrong}"
    assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id)


# ---- 2. the Postgres fallback of a save compares the request ----------------------------


def test_save_key_after_redis_loss_refuses_another_body(
    api: Callable[..., Api], container: Container, database_url: str
) -> None:
    a = api()
    key = {"Idempotency-Key": "save-once"}
    b1 = {"raw": raw("First hook"), "platform": "tiktok", "title": "First"}
    b2 = {"raw": raw("Second hook"), "platform": "tiktok", "title": "Second"}
    first = a.post("/v1/library/assets", b1, **key)
    assert first.status_code == 201, first.text

    container.redis.delete(container.keys.idem(a.user_id, "library_assets", "save-once"))
    assert_error(a.post("/v1/library/assets", b2, **key), 422, "IDEMPOTENCY_KEY_REUSED")
    replay = a.post("/v1/library/assets", b1, **key)
    assert replay.status_code == 201, replay.text
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    rows = sql(database_url, "SELECT title FROM assets WHERE owner_id = :o", o=a.user_id)
    assert rows == [["First"]]


# ---- 6. no 500 from input --------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"month": "0001-01"},
        {"month": "9999-12"},
        {"from": "0001-01-01", "to": "0001-01-02"},
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"to": "0001-01-01"},
    ],
    ids=["month-1", "month-9999", "from-1", "to-9999", "to-1"],
)
def test_admin_costs_at_the_ends_of_the_calendar_are_422(
    api: Callable[..., Api], params: dict[str, str]
) -> None:
    a = api()
    r = a.client.get("/v1/admin/costs", params=params, headers=a.admin_headers)
    err = assert_error(r, 422, "VALIDATION_FAILED")
    assert err["details"]["fields"][0]["loc"][0] == "query"


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    return make_worker_env(default=ok())


def _job_body(generation_id: str, user_id: str = "u-x") -> bytes:
    job = {
        "generation_id": generation_id,
        "user_id": user_id,
        "lease_id": generation_id,
        "request_id": "req-malformed",
    }
    return json.dumps(job).encode()


@pytest.mark.parametrize(
    "body",
    [
        _job_body("not-a-uuid"),
        _job_body("0000\u0000"),
        _job_body(str(uuid.uuid4()), user_id="nul\u0000user"),
        b"{junk",
        b"[]",
    ],
    ids=["not-uuid", "nul-id", "nul-user", "not-json", "not-object"],
)
def test_signed_malformed_job_is_not_retried(
    env: WorkerEnv, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    r = env.signed_post(WORKER_GENERATE_PATH, body)
    assert r.status_code == 489, r.text
    assert r.headers["Upstash-NonRetryable-Error"] == "true"
    assert any("delivery_rejected" in m.getMessage() or _event(m) for m in caplog.records)


def _event(record: Any) -> bool:
    fields = getattr(record, "fields", None) or {}
    return bool(fields.get("event") == "delivery_rejected")


def test_signed_malformed_failure_callback_is_not_retried(env: WorkerEnv) -> None:
    body = json.dumps({"sourceBody": "!!not base64!!"}).encode()
    r = env.signed_post(WORKER_FAILED_PATH, body)
    assert r.status_code == 489, r.text
    assert r.headers["Upstash-NonRetryable-Error"] == "true"


@pytest.mark.parametrize("retried", ["\u00b2", "9" * 5000, "-1", "1e3"])
def test_odd_upstash_retried_header_runs_the_job(
    env: WorkerEnv, api: Callable[..., Api], retried: str
) -> None:
    user = api("basic")
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    r = env.signed_post(
        WORKER_GENERATE_PATH,
        job.to_body(),
        # Header bytes as sent on the wire (latin-1 is HTTP's byte-per-character reading).
        headers={"X-Request-Id": job.request_id, "Upstash-Retried": retried.encode("latin-1")},  # type: ignore[dict-item]
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"result": "succeeded"}


# ---- 7. purge leaves a saved asset as it was -------------------------------------------


def test_purging_the_source_draft_leaves_the_asset_and_its_etag_as_they_were(
    api: Callable[..., Api], container: Container, database_url: str
) -> None:
    a = api("basic")
    draft_id, gen = _finished_draft(a)
    body = {"draft_id": draft_id, "variant_id": gen["variants"][0]["id"], "title": "Kept"}
    saved = a.post("/v1/library/assets", body)
    assert saved.status_code == 201, saved.text
    path = f"/v1/library/assets/{saved.json()['id']}"
    before = a.get(path)
    assert a.client.delete(f"/v1/drafts/{draft_id}", headers=a.headers).status_code == 204

    # Far from this month (its generation would hold the draft back until the month ends).
    later = datetime.now(UTC) + timedelta(days=70)
    lifecycle.purge_deleted(container.db, later)
    assert sql(database_url, "SELECT count(*) FROM drafts WHERE id = CAST(:d AS uuid)",
               d=draft_id) == [[0]]  # fmt: skip

    after = a.get(path)
    assert after.status_code == 200
    assert after.json() == before.json()  # SPEC §9: the source stays as it was
    assert after.headers["ETag"] == before.headers["ETag"]


# ---- 8. contract gaps ------------------------------------------------------------------


def _asset(a: Api, hook: str = "Drink water", **extra: Any) -> httpx.Response:
    body = {"raw": raw(hook), "platform": "tiktok", "title": f"T {hook}", **extra}
    r = a.post("/v1/library/assets", body)
    assert r.status_code == 201, r.text
    return r


def test_restore_with_a_malformed_json_body_is_400(api: Callable[..., Api]) -> None:
    a = api()
    asset = _asset(a).json()
    path = f"/v1/library/assets/{asset['id']}"
    assert a.client.delete(path, headers=a.headers).status_code == 204
    r = a.client.post(
        f"{path}/restore",
        content=b"{junk",
        headers={**a.headers, "Content-Type": "application/json"},
    )
    assert_error(r, 400, "INVALID_JSON")
    assert a.get(path).status_code == 404  # nothing was restored


def test_if_match_list_matches_when_any_tag_matches(api: Callable[..., Api]) -> None:
    a = api("basic")
    asset = _asset(a)
    path = f"/v1/library/assets/{asset.json()['id']}"
    etag = a.get(path).headers["ETag"]
    r = a.client.patch(
        path, json={"title": "Listed"}, headers={**a.headers, "If-Match": f'"0", {etag}'}
    )
    assert r.status_code == 200, r.text
    stale = a.client.patch(
        path, json={"title": "Stale"}, headers={**a.headers, "If-Match": f'"0", {etag}'}
    )
    assert_error(stale, 412, "PRECONDITION_FAILED")

    draft_id, _ = _finished_draft(a)
    dpath = f"/v1/drafts/{draft_id}"
    detag = a.get(dpath).headers["ETag"]
    r = a.client.patch(
        dpath, json={"title": "Listed"}, headers={**a.headers, "If-Match": f'W/"9", {detag}'}
    )
    assert r.status_code == 200, r.text


def test_delete_and_restore_honour_a_stale_if_match(api: Callable[..., Api]) -> None:
    a = api("basic")
    path = f"/v1/library/assets/{_asset(a).json()['id']}"
    old = a.get(path).headers["ETag"]
    edited = a.client.patch(path, json={"title": "New"}, headers={**a.headers, "If-Match": old})
    assert edited.status_code == 200, edited.text
    current = edited.headers["ETag"]

    stale = {**a.headers, "If-Match": old}
    assert_error(a.client.delete(path, headers=stale), 412, "PRECONDITION_FAILED")
    assert a.get(path).status_code == 200
    assert a.client.delete(path, headers={**a.headers, "If-Match": current}).status_code == 204
    assert_error(a.client.post(f"{path}/restore", headers=stale), 412, "PRECONDITION_FAILED")
    restored = a.client.post(f"{path}/restore", headers={**a.headers, "If-Match": current})
    assert restored.status_code == 200, restored.text

    draft_id, _ = _finished_draft(a)
    dpath = f"/v1/drafts/{draft_id}"
    dold = a.get(dpath).headers["ETag"]
    patched = a.client.patch(dpath, json={"title": "x"}, headers={**a.headers, "If-Match": dold})
    assert patched.status_code == 200
    dstale = {**a.headers, "If-Match": dold}
    assert_error(a.client.delete(dpath, headers=dstale), 412, "PRECONDITION_FAILED")
    assert a.get(dpath).status_code == 200
    dcurrent = {**a.headers, "If-Match": patched.headers["ETag"]}
    assert a.client.delete(dpath, headers=dcurrent).status_code == 204


@pytest.mark.parametrize("title", ["   ", "\t\n", "\u3000"])
def test_blank_asset_title_is_refused(api: Callable[..., Api], title: str) -> None:
    a = api()
    body = {"raw": raw("Hook"), "platform": "tiktok", "title": title}
    assert_error(a.post("/v1/library/assets", body), 422, "VALIDATION_FAILED")
    path = f"/v1/library/assets/{_asset(a).json()['id']}"
    assert_error(
        a.client.patch(path, json={"title": title}, headers=a.headers), 422, "VALIDATION_FAILED"
    )


def test_duplicate_tags_are_stored_once(api: Callable[..., Api]) -> None:
    a = api()
    r = _asset(a, tags=["water", "Water", "tips", "water"])
    assert r.json()["tags"] == ["water", "tips"]
    path = f"/v1/library/assets/{r.json()['id']}"
    patched = a.client.patch(path, json={"tags": ["b", "a", "B"]}, headers=a.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["tags"] == ["b", "a"]


@pytest.mark.parametrize("q", ["\U0001f600", "'", "!!", "- -"])
def test_a_search_with_no_searchable_word_matches_nothing(api: Callable[..., Api], q: str) -> None:
    a = api("basic")
    _asset(a, "Drink water")
    _finished_draft(a)
    assert len(a.get("/v1/library/assets").json()["items"]) == 1
    r = a.get("/v1/library/assets", params={"q": q})
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "next_cursor": None}
    d = a.get("/v1/drafts", params={"q": q})
    assert d.status_code == 200, d.text
    assert d.json() == {"items": [], "next_cursor": None}


def test_the_201_of_a_save_has_the_etag_of_the_asset(api: Callable[..., Api]) -> None:
    a = api()
    key = {"Idempotency-Key": "etag-on-201"}
    body = {"raw": raw("Hook"), "platform": "tiktok", "title": "ETag"}
    created = a.post("/v1/library/assets", body, **key)
    assert created.status_code == 201
    assert (
        created.headers["ETag"]
        == a.get(f"/v1/library/assets/{created.json()['id']}").headers["ETag"]
    )
    assert a.post("/v1/library/assets", body, **key).headers["ETag"] == created.headers["ETag"]


def test_429_carries_ratelimit_fields(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
) -> None:
    a = api("basic")
    queue = RecordingQueue()
    use_container(derive(container, base_env, queue=queue))
    first = a.post("/v1/create", CREATE)
    assert first.status_code == 202
    r = a.post("/v1/create", CREATE)
    assert_error(r, 429, "CONCURRENCY_LIMIT")
    assert r.headers["RateLimit-Limit"] == "1"
    assert r.headers["RateLimit-Remaining"] == "0"
    assert int(r.headers["RateLimit-Reset"]) == int(r.headers["Retry-After"])
    # Ended, not left queued: a queued job holds a provider slot the session shares.
    queue.deliver_to(container.queue)
    a.wait(first.json()["generation_id"])
