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


def _stream_events(a: Api, generation_id: str) -> list[tuple[str, str, dict[str, object]]]:
    """Read GET /v1/generations/{id}/events to its end: (id, event, data) of each event."""
    import json

    found: list[tuple[str, str, dict[str, object]]] = []
    block: dict[str, str] = {}
    path = f"/v1/generations/{generation_id}/events"
    with a.client.stream("GET", path, headers=a.headers, timeout=60) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                block[name] = value
            elif "event" in block:
                found.append((block["id"], block["event"], json.loads(block["data"])))
                block = {}
            else:
                block = {}
    return found


def test_watch_a_job_over_its_event_stream_and_cancel_another(api: Callable[..., Api]) -> None:
    """The stream follows a job to its end; a cancel ends a job once, whatever it raced."""
    a = api("pro")
    r = a.post("/v1/create", {"brief": "3 reasons to drink water", "platform": "tiktok"})
    assert r.status_code == 202, r.text
    events = _stream_events(a, r.json()["generation_id"])
    assert events[0][:2] == ("1", "queued")
    assert events[-1][:2] == ("3", "succeeded")
    assert [e[0] for e in events] == sorted({e[0] for e in events})  # ids only move forward
    assert len(events[-1][2]["variants"]) == 1  # type: ignore[arg-type]

    r = a.post("/v1/create", {"brief": "2 reasons to sleep", "platform": "tiktok"})
    gid = r.json()["generation_id"]
    cancel = a.client.post(f"/v1/generations/{gid}/cancel", headers=a.headers)
    final = a.wait(gid)
    if cancel.status_code == 409:  # the job had already succeeded
        assert cancel.json()["error"]["details"] == {"status": "succeeded"}
        assert final["status"] == "succeeded"
    else:
        assert cancel.status_code == 200, cancel.text
        assert final["status"] == "cancelled"
        assert final["variants"] == []
    assert _stream_events(a, gid)[-1][1] == final["status"]
    usage = a.get("/v1/usage").json()
    assert usage["generations"]["used"] == 1 + (final["status"] == "succeeded")
    assert usage["concurrency"]["in_use"] == 0
