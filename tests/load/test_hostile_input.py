"""Hostile input through the real local server: oversized, deeply nested, NUL-laden and
invalid-UTF-8 bodies, and SQL / Lua / format metacharacters in every string a client
controls (body fields of every POST/PATCH, the library's query string, Idempotency-Key
and X-Request-Id). Each gets a clear 4xx or a 2xx, never a 5xx; whatever is stored
reads back exactly; a refused request stores nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from shared.api.http import MAX_BODY_BYTES
from shared.bootstrap import Container
from tests.e2e.api_support import (
    CREATE,
    RecordingQueue,
    assert_error,
    assert_security_headers,
    count_rows,
    derive,
    raw,
)
from tests.support.e2e import Api

pytestmark = pytest.mark.load

META = [
    "'; DROP TABLE drafts;--",
    "redis.call('FLUSHALL')",
    "\\x00",  # the four characters, not a NUL (that one has its own test)
    "%s %d %(x)s",
    "{{}} ${x} {0}",
    "😀🎬 zero\u200bwidth",
    "\u202eRTL\u200f mark",
    ']]--[[ \\ ` " $1',
]
RANDOM_ID = "00000000-0000-4000-8000-000000000000"
BODIES: dict[str, dict[str, Any]] = {
    "/v1/create": {**CREATE, "title": "t", "tone": "calm", "language": "en"},
    "/v1/regenerate": {"draft_id": RANDOM_ID, "mode": "full", "instructions": "shorter"},
    "/v1/library/assets": {
        "raw": raw("hook"), "platform": "tiktok", "title": "t", "tags": ["a"], "status": "ready"
    },
    "/v1/admin/subscriptions": {"user_id": "someone", "plan": "basic"},
    "/v1/admin/boosts": {"user_id": "someone", "days": 30},
    "/v1/billing/checkout": {"product": "pro"},
}  # fmt: skip
PATCH = {"title": "t", "brief": "b", "tone": "x", "language": "en", "platform": "tiktok",
         "selected_variant_id": RANDOM_ID}  # fmt: skip


def _string_paths(body: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a string (dict keys, list indexes) inside ``body``."""
    if isinstance(body, str):
        yield prefix
    elif isinstance(body, dict):
        for k, v in body.items():
            yield from _string_paths(v, (*prefix, k))
    elif isinstance(body, list):
        for i, v in enumerate(body):
            yield from _string_paths(v, (*prefix, i))


def _with(body: Any, path: tuple[Any, ...], value: str) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def _no_5xx(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text
    assert "Traceback" not in r.text
    assert_security_headers(r)
    if r.status_code >= 400:
        assert r.json()["error"]["code"], r.text


@pytest.fixture
def user(
    container: Container,
    base_env: dict[str, str],
    api: Callable[..., Api],
    use_container: Callable[[Container], Container],
) -> Iterator[Api]:
    """A pro user (also an admin) over a queue that records jobs: nothing runs.

    Its jobs are cancelled afterwards: a queued job holds a provider slot until its lease
    expires, and the session's later tests share the provider's cap (these tests alone
    admit about as many jobs as the cap)."""
    queue = RecordingQueue()
    use_container(derive(container, base_env, queue=queue))
    a = api("pro")
    a.headers = dict(a.admin_headers)  # admin too, so admin routes reach their validation
    a.user_id = "admin-" + a.user_id
    a.grant("pro")
    yield a
    for job in queue.jobs:
        r = a.client.post(f"/v1/generations/{job.generation_id}/cancel", headers=a.headers)
        assert r.status_code == 200, r.text
    assert a.get("/v1/usage").json()["concurrency"]["in_use"] == 0


def _rows(database_url: str, a: Api) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        count_rows(database_url, t, a.user_id) for t in ("drafts", "generations", "assets")
    )


def _send(a: Api, path: str, payload: Any) -> httpx.Response:
    """PATCH for a draft, POST for everything else."""
    if path.startswith("/v1/drafts/"):
        return a.client.patch(path, json=payload, headers=a.headers)
    return a.post(path, payload)


def _post_raw(a: Api, path: str, content: bytes, **headers: str) -> httpx.Response:
    h = {**a.headers, "Content-Type": "application/json", **headers}
    return a.client.post(path, content=content, headers=h)


# ---- size and shape -------------------------------------------------------------------


def test_body_size_limit(user: Api, database_url: str) -> None:
    body = json.dumps(CREATE).encode()
    at_limit = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
    assert len(at_limit) == MAX_BODY_BYTES
    over = body[:-1] + b" " * (MAX_BODY_BYTES + 1 - len(body)) + b"}"

    for path in (*BODIES, "/v1/drafts/" + RANDOM_ID):
        send = user.client.patch if path.startswith("/v1/drafts/") else user.client.post
        h = {**user.headers, "Content-Type": "application/json"}
        assert_error(send(path, content=over, headers=h), 413, "PAYLOAD_TOO_LARGE")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the stream limit must hold
            for i in range(0, len(over), 8192):
                yield over[i : i + 8192]

        assert_error(send(path, content=chunks(), headers=h), 413, "PAYLOAD_TOO_LARGE")
    assert _rows(database_url, user) == (0, 0, 0)

    r = _post_raw(user, "/v1/create", at_limit)
    assert r.status_code == 202, r.text
    big_brief = json.dumps({**CREATE, "brief": "x" * (MAX_BODY_BYTES - 64)}).encode()
    assert len(big_brief) <= MAX_BODY_BYTES
    assert_error(_post_raw(user, "/v1/create", big_brief), 422, "VALIDATION_FAILED")
    assert _rows(database_url, user) == (1, 1, 0)


@pytest.mark.parametrize("depth", [100_000, 30_000, 2_000])
def test_deeply_nested_json(user: Api, database_url: str, depth: int) -> None:
    nested_list = b"[" * depth + b"]" * depth
    nested_obj = b'{"a":' * depth + b"1" + b"}" * depth
    in_field = json.dumps(CREATE)[:-1].encode() + b', "title": ' + nested_list + b"}"
    for path in (*BODIES, "/v1/drafts/" + RANDOM_ID):
        for body in (nested_list, nested_obj, in_field):
            h = {**user.headers, "Content-Type": "application/json"}
            send = user.client.patch if path.startswith("/v1/drafts/") else user.client.post
            r = send(path, content=body, headers=h)
            _no_5xx(r)
            if len(body) > MAX_BODY_BYTES:
                assert_error(r, 413, "PAYLOAD_TOO_LARGE")
            elif depth > 1_000:  # beyond the parser's recursion limit
                assert_error(r, 400, "INVALID_JSON")
    assert _rows(database_url, user) == (0, 0, 0)


def test_invalid_utf8_bodies(user: Api, database_url: str) -> None:
    bad = [
        b'{"brief": "\xff\xfe", "platform": "tiktok"}',
        b"\xc3\x28",
        b'{"brief": "\xed\xa0\x80"}',
    ]
    for path in BODIES:
        for body in bad:
            assert_error(_post_raw(user, path, body), 400, "INVALID_JSON")
    assert _rows(database_url, user) == (0, 0, 0)


def test_nul_in_every_string_field(user: Api, database_url: str) -> None:
    draft = user.post("/v1/create", CREATE).json()["draft_id"]
    before = _rows(database_url, user)
    targets = [*BODIES.items(), (f"/v1/drafts/{draft}", PATCH)]
    for path, body in targets:
        for where in _string_paths(body):
            for value in ("\x00", "a\x00b"):
                r = _send(user, path, _with(body, where, value))
                assert_error(r, 422, "VALIDATION_FAILED")
        assert_error(_send(user, path, {**body, "x\x00": "y"}), 422, "VALIDATION_FAILED")
    assert _rows(database_url, user) == before
    after = user.get(f"/v1/drafts/{draft}").json()
    assert (after["title"], after["brief"], after["tone"]) == (None, CREATE["brief"], None)
    for q in ("\x00", "a\x00"):
        for name in ("q", "tags", "cursor"):
            r = user.get("/v1/library/assets", params={name: q})
            _no_5xx(r)
            # q: no letters or digits means no filter (an empty library here); a tag or a
            # cursor with a NUL is refused.
            assert r.status_code in ((200, 400, 422) if name == "q" else (400, 422)), r.text


# ---- metacharacters -------------------------------------------------------------------


@pytest.mark.parametrize("meta", META, ids=range(len(META)))
def test_metacharacters_in_every_body_field(user: Api, database_url: str, meta: str) -> None:
    stored_drafts = 0
    for where in _string_paths(BODIES["/v1/create"]):
        r = user.post("/v1/create", _with(BODIES["/v1/create"], where, meta))
        _no_5xx(r)
        if r.status_code == 202:
            stored_drafts += 1
            draft = user.get(f"/v1/drafts/{r.json()['draft_id']}").json()
            assert draft[where[0]] == meta  # verbatim, byte for byte
    assert stored_drafts >= 3  # brief, title, tone (language is ≤ 16 characters)

    draft_id = user.post("/v1/create", CREATE).json()["draft_id"]
    for where in _string_paths(PATCH):
        r = _send(user, f"/v1/drafts/{draft_id}", _with(PATCH, where, meta))
        _no_5xx(r)
        if r.status_code == 200:
            assert r.json()[where[0]] == meta
            assert user.get(f"/v1/drafts/{draft_id}").json()[where[0]] == meta

    assets = 0
    for path in ("/v1/library/assets", "/v1/regenerate", "/v1/admin/subscriptions",
                 "/v1/admin/boosts", "/v1/billing/checkout"):  # fmt: skip
        for where in _string_paths(BODIES[path]):
            r = user.post(path, _with(BODIES[path], where, meta))
            _no_5xx(r)
            if path == "/v1/library/assets" and r.status_code == 201:
                assets += 1
                asset = r.json()
                got = asset["content"][where[1]] if where[0] == "raw" else asset[where[0]]
                assert got == meta
                listed = user.get("/v1/library/assets", params={"limit": 1}).json()["items"]
                assert listed[0] == asset
    assert assets >= 4  # title, hook, script, caption

    drafts, generations, saved = _rows(database_url, user)
    assert (drafts, generations) == (stored_drafts + 1, stored_drafts + 1)
    assert saved == assets
    usage = user.get("/v1/usage").json()  # Redis was not flushed: the counters still add up
    assert usage["generations"]["used"] == stored_drafts + 1


@pytest.mark.parametrize("meta", META, ids=range(len(META)))
def test_metacharacters_in_query_and_headers(user: Api, database_url: str, meta: str) -> None:
    for name in ("q", "tags", "cursor", "platform", "status", "limit"):
        r = user.get("/v1/library/assets", params={name: meta})
        _no_5xx(r)
        assert r.status_code in (200, 400, 422), r.text
    encoded = meta.encode("utf-8")
    for header in ("Idempotency-Key", "X-Request-Id"):
        r = user.client.post(
            "/v1/create",
            json=CREATE,
            headers={**user.headers, header: encoded},  # type: ignore[dict-item]
        )
        _no_5xx(r)
        if header == "X-Request-Id":
            assert_error(r, 400, "INVALID_REQUEST_ID")
        elif r.status_code == 202:  # visible ASCII: a valid key, replayed byte for byte
            again = user.client.post(
                "/v1/create",
                json=CREATE,
                headers={**user.headers, header: encoded},  # type: ignore[dict-item]
            )
            assert again.status_code == 202
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.content == r.content
        else:
            assert_error(r, 422, "VALIDATION_FAILED")
    admitted = 1 if all(0x21 <= b <= 0x7E for b in encoded) else 0
    assert _rows(database_url, user) == (admitted, admitted, 0)


def test_unknown_ids_and_paths_with_metacharacters(user: Api) -> None:
    for meta in (*META, "..%2F..%2Fetc", "%0Aline", str(uuid.uuid4()) + "'"):
        for path in (f"/v1/drafts/{meta}", f"/v1/generations/{meta}"):
            r = user.get(path)
            _no_5xx(r)
            assert r.status_code in (400, 404), r.text
