"""The main journey over real HTTP: create → worker → regenerate → library → usage."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.e2e import Api

# Runs in-process and, through the base-URL switch, against the rehearsal (conftest.py).
pytestmark = pytest.mark.rehearsal


@pytest.mark.usefixtures("pinned_clock")  # usage counts below are one month's
def test_create_poll_regenerate_save_search(api: Callable[..., Api]) -> None:
    a = api("standard")
    r = a.post(
        "/v1/create", {"brief": "3 reasons to drink water", "platform": "tiktok", "variants": 3}
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["Location"] == f"/v1/generations/{body['generation_id']}"
    assert r.headers["RateLimit-Limit"] == "300"
    gen = a.wait(body["generation_id"])
    assert gen["status"] == "succeeded"
    assert len(gen["variants"]) == 3

    source = gen["variants"][1]
    r = a.post(
        "/v1/regenerate",
        {
            "draft_id": body["draft_id"],
            "mode": "targeted",
            "variant_id": source["id"],
            "fields": ["hook"],
        },
    )
    assert r.status_code == 202, r.text
    regen = a.wait(r.json()["generation_id"])
    assert regen["kind"] == "regen_targeted"
    [new] = regen["variants"]
    assert new["source_variant_id"] == source["id"]
    assert new["script"] == source["script"]
    assert new["caption"] == source["caption"]

    r = a.post(
        "/v1/library/assets",
        {"draft_id": body["draft_id"], "variant_id": new["id"], "tags": ["Water", "health"]},
    )
    assert r.status_code == 201, r.text
    asset = r.json()
    assert asset["tags"] == ["water", "health"]
    assert asset["source"] == {"draft_id": body["draft_id"], "variant_id": new["id"]}

    listed = a.get("/v1/library/assets", params={"tags": "water"}).json()
    assert [i["id"] for i in listed["items"]] == [asset["id"]]

    draft = a.get(f"/v1/drafts/{body['draft_id']}").json()
    assert [g["kind"] for g in draft["generations"]] == ["regen_targeted", "create"]

    usage = a.get("/v1/usage").json()
    assert usage["generations"]["used"] == 2
    assert usage["concurrency"]["in_use"] == 0
