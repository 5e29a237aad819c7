"""SPEC §3 over real HTTP: malformed input, routing, auth, ownership, CORS, security
headers, request ids and the 5xx rows — each in the exact error shape."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from devtools.devtoken import mint_dev_token
from devtools.net import free_port
from shared.bootstrap import Container
from shared.redis.keys import Keys
from tests.e2e.api_support import (
    CREATE,
    ExplodingDb,
    RecordingQueue,
    assert_error,
    assert_security_headers,
    count_rows,
    derive,
    raw,
    tamper,
)
from tests.support.e2e import Api

ORIGIN = "https://app.example.com"


# ---- 400 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"brief": NaN}', b"\xff\xfe", b""],
    ids=["syntax", "nan", "utf8", "empty"],
)
def test_unparseable_body_is_400_invalid_json(api: Callable[..., Api], content: bytes) -> None:
    a = api("basic")
    r = a.client.post(
        "/v1/create", content=content, headers={**a.headers, "Content-Type": "application/json"}
    )
    assert_error(r, 400, "INVALID_JSON")


def test_tampered_cursor_is_400_invalid_cursor(api: Callable[..., Api]) -> None:
    a = api()
    for i in range(3):
        body = {"raw": raw(f"hook {i}"), "platform": "tiktok", "title": f"t{i}"}
        assert a.post("/v1/library/assets", body).status_code == 201
    page = a.get("/v1/library/assets", params={"limit": 1}).json()
    cursor = page["next_cursor"]
    assert cursor
    for bad in (tamper(cursor), "not-a-cursor", cursor + "x", cursor[:-4], "é"):
        r = a.get("/v1/library/assets", params={"limit": 1, "cursor": bad})
        assert_error(r, 400, "INVALID_CURSOR")


def test_bad_request_id_is_400_with_a_generated_id(client: httpx.Client) -> None:
    r = client.get("/healthz", headers={"X-Request-Id": "bad id!"})
    err = assert_error(r, 400, "INVALID_REQUEST_ID")
    assert err["request_id"] != "bad id!"
    r = client.get("/healthz", headers={"X-Request-Id": "x" * 129})
    assert_error(r, 400, "INVALID_REQUEST_ID")


def test_incoming_request_id_is_kept_on_success_and_error(
    client: httpx.Client, api: Callable[..., Api]
) -> None:
    r = client.get("/healthz", headers={"X-Request-Id": "req-1.A_b"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == "req-1.A_b"
    a = api()
    r = a.client.get(f"/v1/drafts/{uuid.uuid4()}", headers={**a.headers, "X-Request-Id": "abc.42"})
    assert assert_error(r, 404, "NOT_FOUND")["request_id"] == "abc.42"
    r = client.get("/healthz")
    assert len(r.headers["X-Request-Id"]) >= 8


# ---- 401 -------------------------------------------------------------------------------


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_authorization(kind: str, user: str, secret: str) -> str | None:
    exp = int(time.time()) + 3600
    if kind == "missing":
        return None
    if kind == "not_bearer":
        return "Basic dXNlcjpwYXNz"
    if kind == "malformed":
        return "Bearer not.a.jwt"
    if kind == "empty_bearer":
        return "Bearer"
    if kind == "expired":
        token = mint_dev_token(user, secret=secret, ttl_s=60, now=time.time() - 7200)
        return f"Bearer {token}"
    if kind == "alg_none":
        header = _b64({"alg": "none", "typ": "JWT"})
        return f"Bearer {header}.{_b64({'sub': user, 'exp': exp, 'role': 'admin'})}."
    if kind == "forged":
        token = mint_dev_token(user, secret="another-secret-that-is-long-enough-0123456789")
        return f"Bearer {token}"
    if kind == "tampered_claims":
        head, _, sig = mint_dev_token(user, secret=secret).split(".")
        return f"Bearer {head}.{_b64({'sub': user, 'exp': exp, 'role': 'admin'})}.{sig}"
    raise AssertionError(kind)


AUTH_FAILURES = [
    "missing",
    "not_bearer",
    "malformed",
    "empty_bearer",
    "expired",
    "alg_none",
    "forged",
    "tampered_claims",
]


@pytest.mark.parametrize("kind", AUTH_FAILURES)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/usage"), ("POST", "/v1/create"), ("POST", "/v1/admin/subscriptions")],
)
def test_every_bad_credential_is_401(
    client: httpx.Client, container: Container, kind: str, method: str, path: str
) -> None:
    user = f"u-{uuid.uuid4().hex[:12]}"
    auth = _bad_authorization(kind, user, str(container.settings.effective_hs256_secret))
    headers = {"Authorization": auth} if auth is not None else {}
    body = {"user_id": user, "plan": "pro"} if "admin" in path else CREATE
    r = client.request(method, path, json=body if method == "POST" else None, headers=headers)
    err = assert_error(r, 401, "UNAUTHENTICATED")
    assert "eyJ" not in err["message"]  # no token echoed


def test_wrong_audience_or_issuer_is_401(
    client: httpx.Client,
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
) -> None:
    env = {"AUTH_AUDIENCE": "reel-api", "AUTH_ISSUER": "https://issuer.example"}
    use_container(derive(container, base_env, env))
    secret = str(container.settings.effective_hs256_secret)
    user = f"u-{uuid.uuid4().hex[:12]}"
    for issuer, audience in (
        ("https://issuer.example", None),
        ("https://issuer.example", "someone-else"),
        (None, "reel-api"),
        ("https://evil.example", "reel-api"),
    ):
        token = mint_dev_token(user, secret=secret, issuer=issuer, audience=audience)
        r = client.get("/v1/usage", headers={"Authorization": f"Bearer {token}"})
        assert_error(r, 401, "UNAUTHENTICATED")
    token = mint_dev_token(
        user, secret=secret, issuer="https://issuer.example", audience="reel-api"
    )
    assert client.get("/v1/usage", headers={"Authorization": f"Bearer {token}"}).status_code == 200


# ---- 402 / 403 -------------------------------------------------------------------------


def test_no_plan_is_402_but_reads_still_work(api: Callable[..., Api]) -> None:
    a = api()
    assert_error(a.post("/v1/create", CREATE), 402, "SUBSCRIPTION_REQUIRED")
    usage = a.get("/v1/usage")
    assert usage.status_code == 200
    assert usage.json()["plan"] is None
    a.grant("basic")
    a.grant(None)  # cancelled: no plan again, at once (the plan cache was invalidated)
    assert_error(a.post("/v1/create", CREATE), 402, "SUBSCRIPTION_REQUIRED")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/admin/subscriptions", {"user_id": "someone", "plan": "pro"}),
        ("POST", "/v1/admin/boosts", {"user_id": "someone", "days": 30}),
        ("GET", "/v1/admin/costs", None),
    ],
)
def test_admin_route_without_admin_role_is_403(
    api: Callable[..., Api], method: str, path: str, body: Any
) -> None:
    a = api()
    r = a.client.request(method, path, json=body, headers=a.headers)
    assert_error(r, 403, "FORBIDDEN")
    assert a.get("/v1/usage").json()["plan"] is None  # nothing was granted


# ---- 404 / 405 -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nope", "/", "/v1/create/extra", "/worker"])
def test_unknown_route_is_404(client: httpx.Client, path: str) -> None:
    assert_error(client.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "path",
    ["/v1/drafts/not-a-uuid", f"/v1/drafts/{uuid.uuid4()}", f"/v1/generations/{uuid.uuid4()}"],
)
def test_unknown_id_is_404(api: Callable[..., Api], path: str) -> None:
    assert_error(api().get(path), 404, "NOT_FOUND")


def test_another_users_objects_look_missing(api: Callable[..., Api]) -> None:
    owner, other = api("standard"), api("standard")
    r = owner.post("/v1/create", {**CREATE, "variants": 2})
    assert r.status_code == 202, r.text
    draft_id, gen_id = r.json()["draft_id"], r.json()["generation_id"]
    variant = owner.wait(gen_id)["variants"][0]
    asset = owner.post("/v1/library/assets", {"draft_id": draft_id, "variant_id": variant["id"]})
    assert asset.status_code == 201

    missing = assert_error(other.get(f"/v1/drafts/{uuid.uuid4()}"), 404, "NOT_FOUND")
    for r in (
        other.get(f"/v1/drafts/{draft_id}"),
        other.get(f"/v1/generations/{gen_id}"),
        other.client.patch(f"/v1/drafts/{draft_id}", json={"title": "mine"}, headers=other.headers),
        other.post("/v1/regenerate", {"draft_id": draft_id, "mode": "full"}),
        other.post(
            "/v1/regenerate",
            {"draft_id": draft_id, "mode": "targeted", "variant_id": variant["id"]},
        ),
        other.post("/v1/library/assets", {"draft_id": draft_id, "variant_id": variant["id"]}),
    ):
        err = assert_error(r, 404, "NOT_FOUND")
        assert err["details"] == missing["details"]
    assert other.get("/v1/library/assets").json()["items"] == []
    assert other.get("/v1/usage").json()["generations"]["used"] == 0
    assert owner.get(f"/v1/drafts/{draft_id}").json()["title"] is None


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/create", "POST"),
        ("PUT", "/v1/drafts/" + str(uuid.uuid4()), "DELETE, GET, PATCH"),
        ("PUT", "/v1/library/assets", "GET, POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    api: Callable[..., Api], method: str, path: str, allow: str
) -> None:
    a = api()
    r = a.client.request(method, path, headers={**a.headers, "Content-Type": "application/json"})
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["Allow"] == allow


# ---- 413 / 415 / 422 -------------------------------------------------------------------


def test_body_over_64_kib_is_413(api: Callable[..., Api]) -> None:
    a = api("basic")
    big = {**CREATE, "brief": "x" * (64 * 1024)}
    assert_error(a.post("/v1/create", big), 413, "PAYLOAD_TOO_LARGE")
    # Without Content-Length (chunked) the stream is still cut at the limit.
    payload = json.dumps(big).encode()
    chunks = iter([payload[i : i + 8192] for i in range(0, len(payload), 8192)])
    r = a.client.post(
        "/v1/create", content=chunks, headers={**a.headers, "Content-Type": "application/json"}
    )
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert a.get("/v1/usage").json()["generations"]["used"] == 0


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_non_json_media_type_is_415(api: Callable[..., Api], content_type: str | None) -> None:
    a = api("basic")
    headers = dict(a.headers)
    if content_type:
        headers["Content-Type"] = content_type
    r = a.client.post("/v1/create", content=json.dumps(CREATE).encode(), headers=headers)
    assert_error(r, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**CREATE, "colour": "red"}, ["colour"]),
        ({**CREATE, "platform": "myspace"}, ["platform"]),
        ({**CREATE, "variants": 6}, ["variants"]),
        ({**CREATE, "brief": ""}, ["brief"]),
        ({"platform": "tiktok"}, ["brief"]),
        ({**CREATE, "duration_seconds": 4}, ["duration_seconds"]),
        ({**CREATE, "variants": True}, ["variants"]),
        ({**CREATE, "variants": "2"}, ["variants"]),
        ({**CREATE, "variants": 1.5}, ["variants"]),
        ({**CREATE, "duration_seconds": "30"}, ["duration_seconds"]),
    ],
    ids=[
        "unknown_field",
        "bad_enum",
        "too_many_variants",
        "empty_brief",
        "missing",
        "duration",
        "bool_for_int",
        "string_for_int",
        "float_for_int",
        "string_duration",
    ],
)
def test_invalid_fields_are_422_with_field_locations(
    api: Callable[..., Api], body: dict[str, Any], loc: list[str]
) -> None:
    a = api("basic")
    err = assert_error(a.post("/v1/create", body), 422, "VALIDATION_FAILED")
    fields = err["details"]["fields"]
    assert fields, err
    for f in fields:
        assert set(f) == {"loc", "msg"}
        assert isinstance(f["msg"], str)
        assert f["msg"]
    assert any(f["loc"][: len(loc)] == loc for f in fields), fields
    assert a.get("/v1/usage").json()["generations"]["used"] == 0


def test_non_object_body_and_bad_idempotency_key_are_422(api: Callable[..., Api]) -> None:
    a = api("basic")
    assert_error(a.post("/v1/create", [CREATE]), 422, "VALIDATION_FAILED")
    err = assert_error(
        a.post("/v1/create", CREATE, **{"Idempotency-Key": "has space"}), 422, "VALIDATION_FAILED"
    )
    assert err["details"]["fields"][0]["loc"] == ["header", "Idempotency-Key"]


# ---- 5xx -------------------------------------------------------------------------------


def test_redis_down_is_503_and_nothing_is_written(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    database_url: str,
    use_container: Callable[[Container], Container],
) -> None:
    a = api("basic")
    queue = RecordingQueue()
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    use_container(derive(container, base_env, env, queue=queue))
    r = a.post("/v1/create", CREATE, **{"Idempotency-Key": "k-redis-down"})
    assert_error(r, 503, "SERVICE_UNAVAILABLE")
    assert count_rows(database_url, "drafts", a.user_id) == 0
    assert count_rows(database_url, "generations", a.user_id) == 0
    assert queue.jobs == []
    ready = a.client.get("/readyz")
    err = assert_error(ready, 503, "SERVICE_UNAVAILABLE")
    assert err["details"]["checks"] == {"postgres": "ok", "redis": "unavailable"}


def test_unexpected_exception_is_500_without_details(
    api: Callable[..., Api],
    container: Container,
    base_env: dict[str, str],
    use_container: Callable[[Container], Container],
) -> None:
    a = api("basic")
    use_container(derive(container, base_env, db=ExplodingDb()))
    for r in (a.get(f"/v1/drafts/{uuid.uuid4()}"), a.get("/v1/library/assets")):
        err = assert_error(r, 500, "INTERNAL")
        assert err["details"] == {}
        for leak in ("boom", "hunter2", "RuntimeError", "Traceback", "File "):
            assert leak not in r.text


def test_redis_command_error_is_500_without_its_text(
    api: Callable[..., Api], container: Container, redis_url: str
) -> None:
    a = api("basic")
    # A key of the wrong type makes the script fail with a Redis error whose text names
    # keys and script internals: none of it may reach the client.
    r = redis.Redis.from_url(redis_url)
    key = Keys(container.settings.redis_key_prefix).plan_effective(a.user_id)
    try:
        r.delete(key)
        r.lpush(key, "x")
        resp = a.get("/v1/usage")
    finally:
        r.delete(key)
        r.close()
    err = assert_error(resp, 500, "INTERNAL")
    for leak in ("WRONGTYPE", "script", a.user_id, "Redis refused"):
        assert leak not in resp.text, resp.text
    assert err["details"] == {}


# ---- CORS and security headers ---------------------------------------------------------


def test_cors_for_allowed_origin_only(client: httpx.Client, api: Callable[..., Api]) -> None:
    ok = client.get("/healthz", headers={"Origin": ORIGIN})
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in ok.headers["Vary"]
    assert "X-Request-Id" in ok.headers["Access-Control-Expose-Headers"]

    pre = client.options(
        "/v1/create",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert pre.status_code == 204
    assert pre.content == b""
    assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    allowed = pre.headers["Access-Control-Allow-Headers"].lower()
    for h in ("authorization", "content-type", "idempotency-key", "if-match"):
        assert h in allowed
    assert_security_headers(pre)

    # An error answer still carries CORS, so the browser app can read the error body.
    err = client.get("/v1/usage", headers={"Origin": ORIGIN})
    assert err.status_code == 401
    assert err.headers["Access-Control-Allow-Origin"] == ORIGIN

    for evil in ("https://evil.example.com", "https://app.example.com.evil.io", "null"):
        r = client.get("/healthz", headers={"Origin": evil})
        assert "Access-Control-Allow-Origin" not in r.headers
        pre = client.options(
            "/v1/create", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
        )
        assert not any(h.lower().startswith("access-control-") for h in pre.headers)


def test_security_headers_on_every_kind_of_answer(
    client: httpx.Client, api: Callable[..., Api]
) -> None:
    a = api("basic")
    responses = [
        client.get("/healthz"),
        client.get("/openapi.json"),
        client.get("/v1/usage"),
        client.get("/nope"),
        client.delete("/v1/create"),
        client.options("/v1/create"),
        a.post("/v1/create", CREATE),
        a.get("/v1/usage"),
        a.post("/v1/create", {**CREATE, "x": 1}),
    ]
    for r in responses:
        assert_security_headers(r)
    a.wait(responses[6].json()["generation_id"])
