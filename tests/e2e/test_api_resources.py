"""Drafts (ETag / If-Match), library search and pagination, the OpenAPI document, and a
``make dev`` smoke run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.devtoken import mint_dev_token
from devtools.net import free_port
from shared.api.openapi import render
from shared.config import DEV_HS256_SECRET
from tests.e2e.api_support import CREATE, assert_error, raw, tamper
from tests.support.e2e import Api

ROOT = Path(__file__).resolve().parents[2]


# ---- drafts ----------------------------------------------------------------------------


def _draft_with_variants(a: Api, variants: int) -> tuple[str, list[dict[str, Any]]]:
    r = a.post("/v1/create", {**CREATE, "variants": variants})
    assert r.status_code == 202, r.text
    gen = a.wait(r.json()["generation_id"])
    assert gen["status"] == "succeeded"
    return r.json()["draft_id"], gen["variants"]


def test_draft_etag_and_if_match(api: Callable[..., Api]) -> None:
    a = api("standard")
    draft_id, variants = _draft_with_variants(a, 2)
    other_draft, other_variants = _draft_with_variants(a, 1)
    path = f"/v1/drafts/{draft_id}"

    got = a.get(path)
    assert got.status_code == 200
    etag = got.headers["ETag"]
    assert a.get(path).headers["ETag"] == etag  # stable while unchanged
    body = got.json()
    assert body["id"] == draft_id
    assert body["platform"] == "tiktok"
    assert [g["kind"] for g in body["generations"]] == ["create"]

    def patch(changes: dict[str, Any], if_match: str | None = None) -> httpx.Response:
        headers = {**a.headers, **({"If-Match": if_match} if if_match else {})}
        return a.client.patch(path, json=changes, headers=headers)

    r = patch({"title": "Hydration", "selected_variant_id": variants[1]["id"]}, etag)
    assert r.status_code == 200, r.text
    new_etag = r.headers["ETag"]
    assert new_etag != etag
    assert r.json()["title"] == "Hydration"
    assert r.json()["selected_variant_id"] == variants[1]["id"]
    assert a.get(path).headers["ETag"] == new_etag

    err = assert_error(patch({"title": "lost update"}, etag), 412, "PRECONDITION_FAILED")
    assert err["details"] == {}
    assert_error(patch({"title": "garbage"}, "W/not-an-etag"), 412, "PRECONDITION_FAILED")
    assert a.get(path).json()["title"] == "Hydration"

    err = assert_error(
        patch({"selected_variant_id": other_variants[0]["id"]}, new_etag), 422, "VALIDATION_FAILED"
    )
    assert err["details"]["fields"][0]["loc"] == ["selected_variant_id"]
    err = assert_error(patch({"selected_variant_id": str(uuid.uuid4())}), 422, "VALIDATION_FAILED")
    assert_error(patch({"colour": "red"}), 422, "VALIDATION_FAILED")
    assert_error(patch({}), 422, "VALIDATION_FAILED")
    assert a.get(path).headers["ETag"] == new_etag  # refusals changed nothing

    r = patch({"tone": "calm"}, "*")
    assert r.status_code == 200
    assert r.json()["tone"] == "calm"
    assert a.get(f"/v1/drafts/{other_draft}").json()["selected_variant_id"] is None


# ---- library ---------------------------------------------------------------------------


def _save(a: Api, title: str, platform: str, tags: list[str], status: str, hook: str) -> str:
    body = {"raw": raw(hook), "platform": platform, "title": title, "tags": tags, "status": status}
    r = a.post("/v1/library/assets", body)
    assert r.status_code == 201, r.text
    asset_id: str = r.json()["id"]
    return asset_id


def test_library_filters_and_pagination(api: Callable[..., Api]) -> None:
    a = api()
    ids = [
        _save(a, "Morning water", "tiktok", ["water", "health"], "ready", "Drink up"),
        _save(a, "Gym tips", "instagram_reels", ["fitness", "health"], "published", "Lift"),
        _save(a, "Sleep", "youtube_shorts", ["health"], "draft", "Rest well with WATER"),
        _save(a, "Code", "tiktok", ["tech"], "archived", "Ship it"),
        _save(a, "Water bottle review", "tiktok", ["Water", "Gear"], "ready", "Bottles"),
    ]
    newest_first = ids[::-1]
    api().post("/v1/library/assets", {"raw": raw("x"), "platform": "tiktok", "title": "Water"})

    def listed(**params: Any) -> list[str]:
        r = a.get("/v1/library/assets", params=params)
        assert r.status_code == 200, r.text
        return [item["id"] for item in r.json()["items"]]

    assert listed() == newest_first
    assert listed(platform="tiktok") == [ids[4], ids[3], ids[0]]
    assert listed(status="ready") == [ids[4], ids[0]]
    assert listed(tags="health") == [ids[2], ids[1], ids[0]]
    assert listed(tags="water,health") == [ids[0]]  # all of them
    assert listed(tags="WATER") == [ids[4], ids[0]]
    assert listed(tags="health,tech") == []
    assert listed(q="water") == [ids[4], ids[2], ids[0]]  # title or hook, any case
    assert listed(q="WATER", platform="tiktok", status="ready", tags="gear") == [ids[4]]
    item = a.get("/v1/library/assets", params={"tags": "gear"}).json()["items"][0]
    assert item["tags"] == ["water", "gear"]
    assert item["source"] is None
    assert item["content"]["hook"] == "Bottles"

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = a.get("/v1/library/assets", params=params).json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first
    assert pages == 3

    page = a.get("/v1/library/assets", params={"limit": 1, "tags": "health"}).json()
    nxt = a.get(
        "/v1/library/assets", params={"limit": 5, "tags": "health", "cursor": page["next_cursor"]}
    ).json()
    assert [i["id"] for i in nxt["items"]] == [ids[1], ids[0]]

    assert_error(a.get("/v1/library/assets", params={"limit": 0}), 422, "VALIDATION_FAILED")
    assert_error(a.get("/v1/library/assets", params={"status": "gone"}), 422, "VALIDATION_FAILED")
    assert_error(a.get("/v1/library/assets", params={"sort": "x"}), 422, "VALIDATION_FAILED")
    cursor = page["next_cursor"]
    for params in (
        {"tags": "health", "cursor": tamper(cursor)},
        {"tags": "tech", "cursor": cursor},  # minted for other filters
        {"cursor": cursor},
    ):
        assert_error(a.get("/v1/library/assets", params=params), 400, "INVALID_CURSOR")
    stranger = api()  # minted for another user
    r = stranger.get("/v1/library/assets", params={"tags": "health", "cursor": cursor})
    assert_error(r, 400, "INVALID_CURSOR")


def test_library_save_validation(api: Callable[..., Api]) -> None:
    a = api()
    ok = {"raw": raw("hook"), "platform": "tiktok", "title": "T"}
    for body in (
        {**ok, "tags": ["no spaces"]},
        {**ok, "tags": [f"t{i}" for i in range(21)]},
        {**ok, "status": "deleted"},
        {k: v for k, v in ok.items() if k != "platform"},
        {**ok, "draft_id": str(uuid.uuid4())},
        {"raw": {**raw("h"), "hook": "x" * 301}, "platform": "tiktok", "title": "T"},
    ):
        assert_error(a.post("/v1/library/assets", body), 422, "VALIDATION_FAILED")
    assert a.get("/v1/library/assets").json()["items"] == []


# ---- OpenAPI ---------------------------------------------------------------------------


def test_openapi_is_served_and_committed_file_is_current(client: httpx.Client) -> None:
    rendered = render()
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == rendered, "openapi.json is stale: run `make openapi`"
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == json.loads(rendered)
    paths = r.json()["paths"]
    for path in ("/v1/create", "/v1/regenerate", "/v1/library/assets", "/v1/drafts/{id}"):
        assert path in paths


# ---- make dev --------------------------------------------------------------------------


@pytest.mark.slow
def test_make_dev_serves_the_api(database_url: str, redis_url: str, run_prefix: str) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTH_", "QSTASH_", "UPSTASH_", "AI_", "MINIMAX_", "STRIPE_"))
    }
    env |= {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"{run_prefix}d",
        "QUEUE_BACKEND": "local",
        "AI_PROVIDER": "offline",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("WORKER_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.dev_server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as c:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    if c.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "dev server did not become healthy"
                time.sleep(0.1)
            assert c.get("/readyz").status_code == 200
            user = f"u-{uuid.uuid4().hex[:12]}"
            admin = mint_dev_token("dev-admin", secret=DEV_HS256_SECRET, admin=True)
            r = c.post(
                "/v1/admin/subscriptions",
                json={"user_id": user, "plan": "basic"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {mint_dev_token(user, secret=DEV_HS256_SECRET)}"}
            r = c.post("/v1/create", json=CREATE, headers=auth)
            assert r.status_code == 202, r.text
            gen_path = r.headers["Location"]
            deadline = time.monotonic() + 20
            while (status := c.get(gen_path, headers=auth).json()["status"]) not in (
                "succeeded",
                "failed",
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert status == "succeeded"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
