"""Library and account lifecycle (SPEC §9) through the real HTTP server: listing drafts,
deleting drafts and assets, editing assets with If-Match, restoring, the export and the
account deletion, and another user's ids answering 404 everywhere."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.api.models import AccountExport
from shared.bootstrap import Container
from tests.e2e.api_support import CREATE, assert_error, derive, raw, sql, tamper
from tests.support.e2e import Api
from tests.support.fake_stripe import FakeStripe

STRIPE_KEY = "sk_test_lifecycle"


def _draft(a: Api, variants: int = 1, **body: Any) -> tuple[str, dict[str, Any]]:
    r = a.post("/v1/create", {**CREATE, "variants": variants, **body})
    assert r.status_code == 202, r.text
    gen = a.wait(r.json()["generation_id"])
    assert gen["status"] == "succeeded"
    return r.json()["draft_id"], gen


def _asset(a: Api, hook: str = "Drink water", **extra: Any) -> dict[str, Any]:
    body = {"raw": raw(hook), "platform": "tiktok", "title": f"T {hook}", **extra}
    r = a.post("/v1/library/assets", body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _delete(a: Api, path: str) -> httpx.Response:
    return a.client.delete(path, headers=a.headers)


def _patch(a: Api, path: str, body: Any, if_match: str | None = None) -> httpx.Response:
    headers = {**a.headers, **({"If-Match": if_match} if if_match else {})}
    return a.client.patch(path, json=body, headers=headers)


# ---- GET /v1/drafts ------------------------------------------------------------------


def test_list_drafts_newest_first_with_summary_search_and_cursor(api: Callable[..., Api]) -> None:
    a = api("standard")
    first, _ = _draft(a, 2, title="Hydration basics", brief="why water matters")
    second, _ = _draft(a, 1, title="Sleep", brief="go to bed earlier", platform="youtube_shorts")
    third, _ = _draft(a, 1, title="Coffee", brief="espresso or filter")

    r = a.get("/v1/drafts")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["id"] for i in items] == [third, second, first]
    assert r.json()["next_cursor"] is None
    oldest = items[2]
    assert oldest["variant_count"] == 2
    assert oldest["last_generation"]["kind"] == "create"
    assert oldest["last_generation"]["status"] == "succeeded"
    assert "generations" not in oldest
    assert oldest["brief"] == "why water matters"

    page1 = a.get("/v1/drafts", params={"limit": 2}).json()
    assert [i["id"] for i in page1["items"]] == [third, second]
    page2 = a.get("/v1/drafts", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [i["id"] for i in page2["items"]] == [first]
    assert page2["next_cursor"] is None

    assert [i["id"] for i in a.get("/v1/drafts", params={"q": "WAT"}).json()["items"]] == [first]
    assert [i["id"] for i in a.get("/v1/drafts", params={"q": "sleep"}).json()["items"]] == [second]
    by_platform = a.get("/v1/drafts", params={"platform": "youtube_shorts"}).json()["items"]
    assert [i["id"] for i in by_platform] == [second]

    bad = a.get("/v1/drafts", params={"limit": 2, "cursor": tamper(page1["next_cursor"])})
    assert_error(bad, 400, "INVALID_CURSOR")
    # A cursor is bound to its listing and filters: not reusable with another q.
    other = a.get("/v1/drafts", params={"limit": 2, "q": "x", "cursor": page1["next_cursor"]})
    assert_error(other, 400, "INVALID_CURSOR")
    assert_error(a.get("/v1/drafts", params={"limit": 0}), 422, "VALIDATION_FAILED")
    assert_error(a.get("/v1/drafts", params={"nope": 1}), 422, "VALIDATION_FAILED")


def test_library_cursor_is_refused_by_the_draft_listing(api: Callable[..., Api]) -> None:
    a = api("basic")
    for hook in ("one", "two"):
        _asset(a, hook)
    library_cursor = a.get("/v1/library/assets", params={"limit": 1}).json()["next_cursor"]
    assert library_cursor
    r = a.get("/v1/drafts", params={"limit": 1, "cursor": library_cursor})
    assert_error(r, 400, "INVALID_CURSOR")


# ---- DELETE /v1/drafts/{id} -------------------------------------------------------------


def test_deleted_draft_leaves_every_read_and_saved_assets_keep_their_content(
    api: Callable[..., Api], database_url: str
) -> None:
    a = api("standard")
    draft_id, gen = _draft(a, 2)
    variant = gen["variants"][0]
    saved = a.post("/v1/library/assets", {"draft_id": draft_id, "variant_id": variant["id"]})
    assert saved.status_code == 201
    keep, _ = _draft(a, 1)

    r = _delete(a, f"/v1/drafts/{draft_id}")
    assert r.status_code == 204, r.text
    assert r.content == b""

    assert_error(a.get(f"/v1/drafts/{draft_id}"), 404, "NOT_FOUND")
    assert_error(a.get(f"/v1/generations/{gen['id']}"), 404, "NOT_FOUND")
    assert_error(_patch(a, f"/v1/drafts/{draft_id}", {"title": "x"}), 404, "NOT_FOUND")
    assert_error(_delete(a, f"/v1/drafts/{draft_id}"), 404, "NOT_FOUND")
    assert [i["id"] for i in a.get("/v1/drafts").json()["items"]] == [keep]
    regen = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"})
    assert_error(regen, 404, "NOT_FOUND")
    again = a.post("/v1/library/assets", {"draft_id": draft_id, "variant_id": variant["id"]})
    assert_error(again, 404, "NOT_FOUND")

    asset = a.get(f"/v1/library/assets/{saved.json()['id']}").json()
    assert asset["content"]["hook"] == variant["hook"]
    assert asset["source"] == {"draft_id": draft_id, "variant_id": variant["id"]}
    # Soft: the rows are still there (restorable by support, exported, purged later).
    assert sql(database_url, "SELECT count(*) FROM variants WHERE draft_id = :d", d=draft_id)[0][
        0
    ] == len(gen["variants"])


def test_draft_with_a_generation_in_flight_cannot_be_deleted(
    api: Callable[..., Api], database_url: str, container: Container
) -> None:
    a = api("basic")
    draft_id, gen = _draft(a)
    with container.db.uow() as uow:  # as if a regeneration were queued right now
        uow._session.run(
            "UPDATE generations SET status = 'running' WHERE id = CAST(:g AS uuid)", g=gen["id"]
        )
        uow.commit()
    try:
        assert_error(_delete(a, f"/v1/drafts/{draft_id}"), 409, "GENERATION_IN_PROGRESS")
        assert a.get(f"/v1/drafts/{draft_id}").status_code == 200
    finally:
        with container.db.uow() as uow:
            uow._session.run(
                "UPDATE generations SET status = 'succeeded' WHERE id = CAST(:g AS uuid)",
                g=gen["id"],
            )
            uow.commit()
    assert _delete(a, f"/v1/drafts/{draft_id}").status_code == 204


# ---- /v1/library/assets/{id} ----------------------------------------------------------


def test_asset_get_patch_with_if_match(api: Callable[..., Api]) -> None:
    a = api("basic")
    asset = _asset(a, "Original hook", tags=["a"])
    path = f"/v1/library/assets/{asset['id']}"

    got = a.get(path)
    assert got.status_code == 200
    assert got.json() == asset
    etag = got.headers["ETag"]
    assert etag == '"1"'

    r = _patch(
        a,
        path,
        {"title": "Fixed", "tags": ["Hydration", "b"], "status": "published",
         "content": {"script": "Corrected script with zebra", "hashtags": ["#fixed"]}},
        etag,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["ETag"] == '"2"'
    assert body["title"] == "Fixed"
    assert body["tags"] == ["hydration", "b"]
    assert body["status"] == "published"
    assert body["content"] == {
        "hook": "Original hook", "script": "Corrected script with zebra",
        "caption": "A caption", "hashtags": ["#fixed"],
    }  # fmt: skip
    assert body["updated_at"] >= asset["updated_at"]
    # The search sees the edit.
    found = a.get("/v1/library/assets", params={"q": "zebra"}).json()["items"]
    assert [i["id"] for i in found] == [asset["id"]]

    assert_error(_patch(a, path, {"title": "Stale"}, etag), 412, "PRECONDITION_FAILED")
    assert_error(_patch(a, path, {"title": "Weak"}, 'W/"2"'), 412, "PRECONDITION_FAILED")
    assert _patch(a, path, {"title": "Any"}, "*").status_code == 200
    assert _patch(a, path, {"title": "None"}).status_code == 200
    assert a.get(path).headers["ETag"] == '"4"'
    for bad in (
        {},
        {"title": None},
        {"title": ""},
        {"tags": ["Not Valid!"]},
        {"content": {"hook": "x" * 301}},
        {"content": {"hashtags": ["#ok", "no spaces allowed"]}},
        {"content": {}},
        {"owner_id": "someone"},
        {"content": {"hook": "ok", "extra": 1}},
    ):
        assert_error(_patch(a, path, bad), 422, "VALIDATION_FAILED")


def test_asset_delete_list_deleted_and_restore(api: Callable[..., Api]) -> None:
    a = api("basic")
    keep = _asset(a, "keeper")
    gone = _asset(a, "goner")
    path = f"/v1/library/assets/{gone['id']}"

    assert _delete(a, path).status_code == 204
    assert_error(a.get(path), 404, "NOT_FOUND")
    assert_error(_patch(a, path, {"title": "x"}), 404, "NOT_FOUND")
    assert_error(_delete(a, path), 404, "NOT_FOUND")
    live = a.get("/v1/library/assets").json()["items"]
    assert [i["id"] for i in live] == [keep["id"]]
    assert "deleted_at" not in live[0]
    assert a.get("/v1/library/assets", params={"q": "goner"}).json()["items"] == []

    deleted = a.get("/v1/library/assets", params={"deleted": "true"}).json()["items"]
    assert [i["id"] for i in deleted] == [gone["id"]]
    assert deleted[0]["deleted_at"] is not None
    found = a.get("/v1/library/assets", params={"deleted": "true", "q": "goner"}).json()
    assert [i["id"] for i in found["items"]] == [gone["id"]]

    r = a.client.post(f"{path}/restore", headers=a.headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == gone["id"]
    assert "deleted_at" not in r.json()
    assert r.headers["ETag"] == '"2"'
    again = a.client.post(f"{path}/restore", headers=a.headers)
    assert again.status_code == 200
    assert again.headers["ETag"] == '"2"'  # idempotent: nothing changed the second time
    assert a.get(path).status_code == 200
    assert a.get("/v1/library/assets", params={"deleted": "true"}).json()["items"] == []
    unknown = a.client.post(f"/v1/library/assets/{uuid.uuid4()}/restore", headers=a.headers)
    assert_error(unknown, 404, "NOT_FOUND")


# ---- another user's ids ------------------------------------------------------------------


def test_another_users_ids_answer_404_everywhere(
    api: Callable[..., Api], database_url: str
) -> None:
    owner, intruder = api("standard"), api("standard")
    draft_id, gen = _draft(owner)
    asset = _asset(owner)
    deleted = _asset(owner, "deleted one")
    assert _delete(owner, f"/v1/library/assets/{deleted['id']}").status_code == 204
    apath = f"/v1/library/assets/{asset['id']}"

    for r in (
        intruder.get(f"/v1/drafts/{draft_id}"),
        _patch(intruder, f"/v1/drafts/{draft_id}", {"title": "x"}),
        _delete(intruder, f"/v1/drafts/{draft_id}"),
        intruder.get(f"/v1/generations/{gen['id']}"),
        intruder.get(apath),
        _patch(intruder, apath, {"title": "mine now"}, '"1"'),
        _delete(intruder, apath),
        intruder.client.post(f"{apath}/restore", headers=intruder.headers),
        intruder.client.post(
            f"/v1/library/assets/{deleted['id']}/restore", headers=intruder.headers
        ),
        intruder.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"}),
        intruder.post(
            "/v1/library/assets", {"draft_id": draft_id, "variant_id": gen["variants"][0]["id"]}
        ),
    ):
        assert_error(r, 404, "NOT_FOUND")
    assert intruder.get("/v1/drafts").json()["items"] == []
    assert intruder.get("/v1/library/assets", params={"deleted": "true"}).json()["items"] == []
    export = json.loads(intruder.get("/v1/me/export").content)
    assert export["drafts"] == []
    assert export["assets"] == []
    # And nothing of the owner's changed.
    assert owner.get(apath).json() == asset
    assert owner.get(f"/v1/drafts/{draft_id}").status_code == 200
    assert sql(database_url, "SELECT deleted_at FROM assets WHERE id = CAST(:a AS uuid)",
               a=deleted["id"])[0][0] is not None  # fmt: skip


# ---- GET /v1/me/export -----------------------------------------------------------------


def test_export_holds_everything_and_matches_its_documented_format(
    api: Callable[..., Api],
) -> None:
    a = api("standard")
    assert a.boost().status_code == 200
    draft_id, gen = _draft(a, 2, title="Exported")
    r = a.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full", "variants": 1})
    assert r.status_code == 202, r.text
    regen = a.wait(r.json()["generation_id"])
    gone_draft, _ = _draft(a)
    assert _delete(a, f"/v1/drafts/{gone_draft}").status_code == 204
    live = _asset(a, "live asset")
    deleted = _asset(a, "deleted asset")
    assert _delete(a, f"/v1/library/assets/{deleted['id']}").status_code == 204

    r = a.get("/v1/me/export")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "attachment" in r.headers["Content-Disposition"]
    doc = json.loads(r.content)
    AccountExport.model_validate(doc)  # the format documented in OpenAPI

    assert doc["format"] == "reel-content-export/1"
    assert doc["user"]["id"] == a.user_id
    assert doc["subscription"]["plan"] == "standard"
    assert doc["boost"]["expires_at"] is not None
    drafts = {d["id"]: d for d in doc["drafts"]}
    assert set(drafts) == {draft_id, gone_draft}
    assert drafts[gone_draft]["deleted_at"] is not None
    assert drafts[draft_id]["deleted_at"] is None
    gens = {g["id"]: g for g in drafts[draft_id]["generations"]}
    assert set(gens) == {gen["id"], regen["id"]}
    assert [v["id"] for v in gens[gen["id"]]["variants"]] == [v["id"] for v in gen["variants"]]
    assert gens[regen["id"]]["kind"] == "regen_full"
    assets = {x["id"]: x for x in doc["assets"]}
    assert assets[live["id"]]["deleted_at"] is None
    assert assets[deleted["id"]]["deleted_at"] is not None
    assert sum(m["generations"] for m in doc["usage"]) == 3  # 2 creates + 1 regeneration
    assert all(m["billable"] == m["generations"] for m in doc["usage"])


def test_export_of_a_user_never_seen_is_an_empty_document(api: Callable[..., Api]) -> None:
    a = api()
    doc = json.loads(a.get("/v1/me/export").content)
    assert doc["user"] == {"id": a.user_id, "created_at": None}
    assert doc["subscription"] is None
    assert doc["boost"] is None
    assert doc["usage"] == []
    assert doc["drafts"] == []
    assert doc["assets"] == []


# ---- DELETE /v1/me ---------------------------------------------------------------------


@pytest.fixture
def stripe_fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=STRIPE_KEY) as fake:
        yield fake


@pytest.fixture
def with_stripe(
    container: Container,
    base_env: dict[str, str],
    stripe_fake: FakeStripe,
    use_container: Callable[[Container], Container],
) -> Container:
    env = {
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": "whsec_lifecycle",
        "STRIPE_API_BASE": stripe_fake.url,
    }
    return use_container(derive(container, base_env, env))


def _user_keys(c: Container, user_id: str) -> list[str]:
    """Every Redis key of the run's prefix that names the user (a test-only SCAN)."""
    raw_client = c.redis._client  # type: ignore[attr-defined]
    prefix = c.settings.redis_key_prefix
    found = raw_client.scan_iter(match=f"{prefix}:*{user_id}*", count=1000)
    return sorted(k.decode() if isinstance(k, bytes) else k for k in found)


def _ledger(database_url: str, generation_ids: list[str]) -> list[tuple[Any, ...]]:
    rows = sql(
        database_url,
        "SELECT generation_id::text, owner_id, month, plan, prompt_tokens, completion_tokens, "
        "cost_micro_usd, billable FROM usage_ledger "
        "WHERE generation_id = ANY(CAST(:g AS uuid[])) ORDER BY generation_id",
        g=generation_ids,
    )
    return [tuple(r) for r in rows]


def _sums(database_url: str) -> list[tuple[Any, ...]]:
    rows = sql(
        database_url,
        "SELECT plan, month, count(*), sum(prompt_tokens), sum(completion_tokens), "
        "sum(cost_micro_usd) FROM usage_ledger GROUP BY plan, month ORDER BY plan, month",
    )
    return [tuple(r) for r in rows]


def test_delete_me_cancels_stripe_removes_content_pseudonymises_and_is_idempotent(
    api: Callable[..., Api],
    with_stripe: Container,
    stripe_fake: FakeStripe,
    database_url: str,
    token: Callable[..., str],
) -> None:
    c = with_stripe
    a = api("pro")
    sub_id = f"sub_{uuid.uuid4().hex[:12]}"
    stripe_fake.add_subscription(sub_id, "cus_lifecycle")
    sql_update = "UPDATE subscriptions SET stripe_subscription_id = :s WHERE user_id = :u"
    with c.db.uow() as uow:
        uow._session.run(sql_update, s=sub_id, u=a.user_id)
        uow.commit()
    draft_id, gen = _draft(a, 2)
    r = a.post(
        "/v1/regenerate", {"draft_id": draft_id, "mode": "full"}, **{"Idempotency-Key": "k1"}
    )
    assert r.status_code == 202
    regen = a.wait(r.json()["generation_id"])
    _asset(a, "saved", **{})
    a.post("/v1/library/assets", {"raw": raw("keyed"), "platform": "tiktok", "title": "k"},
           **{"Idempotency-Key": "asset-key"})  # fmt: skip
    assert a.get("/v1/usage").status_code == 200
    generation_ids = [gen["id"], regen["id"]]
    before = _ledger(database_url, generation_ids)
    assert {row[1] for row in before} == {a.user_id}
    sums_before = _sums(database_url)
    assert _user_keys(c, a.user_id)  # counters, plan cache, idempotency records...
    # A rolled-up day of this user's (SPEC §10) must not name them after deletion either.
    sql(database_url, "INSERT INTO usage_daily (day, user_id, plan, model, generations, failed, "
        "prompt_tokens, completion_tokens, cost_micro_usd, computed_at) "
        "VALUES ('2026-01-02', :u, 'pro', 'm', 1, 0, 10, 20, 30, now())", u=a.user_id)  # fmt: skip

    r = _delete(a, "/v1/me")
    assert r.status_code == 202, r.text
    assert r.json() == {"status": "deleted"}

    assert stripe_fake.subscription_status(sub_id) == "canceled"
    for table in ("users", "subscriptions", "boosts"):
        column = "id" if table == "users" else "user_id"
        assert sql(database_url, f"SELECT count(*) FROM {table} WHERE {column} = :u",
                   u=a.user_id)[0][0] == 0  # fmt: skip
    for table in ("drafts", "generations", "assets"):
        assert sql(database_url, f"SELECT count(*) FROM {table} WHERE owner_id = :u",
                   u=a.user_id)[0][0] == 0  # fmt: skip
    assert sql(database_url, "SELECT count(*) FROM variants WHERE draft_id = CAST(:d AS uuid)",
               d=draft_id)[0][0] == 0  # fmt: skip
    after = _ledger(database_url, generation_ids)
    assert len(after) == len(before) == 2
    pseudonyms = {row[1] for row in after}
    assert len(pseudonyms) == 1
    (pseudonym,) = pseudonyms
    assert pseudonym.startswith("deleted:")
    assert a.user_id not in pseudonym
    assert [row[:1] + row[2:] for row in after] == [row[:1] + row[2:] for row in before]
    assert _sums(database_url) == sums_before  # sums by plan and month unchanged
    daily = sql(database_url, "SELECT user_id FROM usage_daily WHERE day = '2026-01-02' "
                "AND user_id IN (:u, :p)", u=a.user_id, p=pseudonym)  # fmt: skip
    assert [row[0] for row in daily] == [pseudonym]
    assert _user_keys(c, a.user_id) == []

    # Idempotent: 202 again, nothing changes (no Stripe call, same pseudonym, no rows).
    stripe_calls = len(stripe_fake.requests)
    again = _delete(a, "/v1/me")
    assert again.status_code == 202
    assert len(stripe_fake.requests) == stripe_calls
    assert _ledger(database_url, generation_ids) == after

    # A later token for the same sub is a new user with no plan.
    fresh = Api(a.client, a.user_id, token(a.user_id), token("admin-x", admin=True))
    usage = fresh.get("/v1/usage").json()
    assert usage["plan"] is None
    assert usage["effective_plan"] is None
    assert usage["generations"]["used"] == 0
    assert_error(fresh.post("/v1/create", CREATE), 402, "SUBSCRIPTION_REQUIRED")
    assert fresh.get("/v1/drafts").json()["items"] == []
    assert json.loads(fresh.get("/v1/me/export").content)["drafts"] == []


def test_delete_me_when_stripe_fails_deletes_nothing(
    api: Callable[..., Api], with_stripe: Container, stripe_fake: FakeStripe, database_url: str
) -> None:
    a = api("basic")
    sub_id = f"sub_{uuid.uuid4().hex[:12]}"
    stripe_fake.add_subscription(sub_id, "cus_x")
    with with_stripe.db.uow() as uow:
        uow._session.run(
            "UPDATE subscriptions SET stripe_subscription_id = :s WHERE user_id = :u",
            s=sub_id,
            u=a.user_id,
        )
        uow.commit()
    _asset(a)
    stripe_fake.fail_next(500)
    assert_error(_delete(a, "/v1/me"), 503, "SERVICE_UNAVAILABLE")
    assert sql(database_url, "SELECT count(*) FROM assets WHERE owner_id = :u",
               u=a.user_id)[0][0] == 1  # fmt: skip
    assert stripe_fake.subscription_status(sub_id) == "active"
    assert _delete(a, "/v1/me").status_code == 202
    assert stripe_fake.subscription_status(sub_id) == "canceled"


def test_delete_me_without_stripe_configured_works_for_admin_granted_plans(
    api: Callable[..., Api], database_url: str
) -> None:
    a = api("basic")
    _draft(a)
    assert _delete(a, "/v1/me").status_code == 202
    assert sql(database_url, "SELECT count(*) FROM drafts WHERE owner_id = :u",
               u=a.user_id)[0][0] == 0  # fmt: skip


# ---- the 30-day window and the purge in the sweep ----------------------------------------


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_restore_window_and_purge_on_both_sides_of_30_days(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    client: httpx.Client,
    use_container: Callable[[Container], Container],
    database_url: str,
) -> None:
    from devtools.fake_minimax import FakeMiniMax, ok
    from tests.support.worker_env import WorkerEnv

    a = api("basic")
    draft_id, _ = _draft(a)
    early, late = _asset(a, "early"), _asset(a, "late")
    # Far from the real month: the draft's generation (this month) never blocks its purge.
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=70)
    clock = MovableClock(t0)
    with FakeMiniMax(default=ok()) as fake:
        env = WorkerEnv.build(base_env, container, client, fake, clock=clock)
        use_container(env.container)

        assert _delete(a, f"/v1/library/assets/{early['id']}").status_code == 204
        assert _delete(a, f"/v1/drafts/{draft_id}").status_code == 204
        clock.at = t0 + timedelta(days=10)
        assert _delete(a, f"/v1/library/assets/{late['id']}").status_code == 204

        def exists(table: str, row_id: str) -> bool:
            assert table in ("assets", "drafts")
            q = f"SELECT count(*) FROM {table} WHERE id = CAST(:i AS uuid)"
            return bool(sql(database_url, q, i=row_id)[0][0])

        # One second inside the window: listed, restorable, not purged.
        clock.at = t0 + timedelta(days=30) - timedelta(seconds=1)
        listed = a.get("/v1/library/assets", params={"deleted": "true"}).json()["items"]
        assert {i["id"] for i in listed} == {early["id"], late["id"]}
        # (The sweep is global: rows other tests deleted in real time are purged too.)
        r = env.sweep()
        assert r.status_code == 200, r.text
        assert set(r.json()["purged"]) == {"drafts", "assets", "cancel_keys"}
        assert exists("assets", early["id"])
        assert exists("drafts", draft_id)

        # One second past it: gone from the list, not restorable, then purged.
        clock.at = t0 + timedelta(days=30) + timedelta(seconds=1)
        listed = a.get("/v1/library/assets", params={"deleted": "true"}).json()["items"]
        assert [i["id"] for i in listed] == [late["id"]]
        restore = a.client.post(f"/v1/library/assets/{early['id']}/restore", headers=a.headers)
        assert_error(restore, 404, "NOT_FOUND")
        r = env.sweep()
        assert r.json()["purged"]["drafts"] >= 1
        assert r.json()["purged"]["assets"] >= 1
        assert not exists("assets", early["id"])
        assert not exists("drafts", draft_id)
        assert exists("assets", late["id"])
        assert env.sweep().status_code == 200
        assert exists("assets", late["id"])
        # The later deletion is still inside its own window.
        ok_restore = a.client.post(f"/v1/library/assets/{late['id']}/restore", headers=a.headers)
        assert ok_restore.status_code == 200
        env.llm.close()
