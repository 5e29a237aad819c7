"""The request wrapper without a server (issue 11 items 4, 6, 7, 8): errors that used to
escape the JSON path, the route on every closing log line, the CORS origin it echoes,
and strict JSON bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from pydantic import BaseModel

from shared.api import models as m
from shared.api.auth import is_valid_subject
from shared.api.http import ApiRequest, dispatch
from shared.bootstrap import Container, set_container
from shared.config import load_settings, reset_settings_cache
from shared.errors import ValidationFailed
from shared.observability.logging import JsonFormatter
from shared.plans import BOOST_DAYS, PLANS, PlanName

ORIGIN = "https://app.example.com"
_app = flask.Flask("test-dispatch")


def call(function: str, path: str, container: Container | None, **kw: Any) -> flask.Response:
    with _app.test_request_context(path, **kw):
        return dispatch(function, flask.request, container)


@pytest.fixture
def dev_container() -> Container:
    # Nothing here connects: these requests end before any adapter is used.
    return Container(load_settings({"CORS_ALLOWED_ORIGINS": ORIGIN + "/"}))


@pytest.fixture
def no_container() -> Iterator[None]:
    set_container(None)
    reset_settings_cache()
    yield
    reset_settings_cache()
    set_container(None)


def finished(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    [record] = [r for r in caplog.records if r.getMessage() == "request_finished"]
    fields: dict[str, Any] = record.fields  # type: ignore[attr-defined]
    return fields


def test_a_configuration_error_in_a_request_answers_json(
    no_container: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("QSTASH_RETRIES", "999")
    caplog.set_level(logging.INFO, logger="reel")
    resp = call("usage", "/v1/usage", None, headers={"X-Request-Id": "cfg-1"})
    assert resp.status_code == 500
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Request-Id"] == "cfg-1"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    body = json.loads(resp.get_data())
    assert body["error"]["code"] == "INTERNAL"
    assert body["error"]["request_id"] == "cfg-1"
    assert "QSTASH_RETRIES" not in resp.get_data(as_text=True)
    assert finished(caplog)["status"] == 500
    [error] = [r for r in caplog.records if r.getMessage() == "unhandled_error"]
    line = json.loads(JsonFormatter().format(error))
    assert line["exception_type"] == "ConfigError"
    assert "999" not in json.dumps(line)  # the message names the value; the log does not


def test_a_500_line_carries_frames_but_no_message(
    dev_container: Container, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*_a: Any, **_k: Any) -> Any:
        secret_local = "hunter2"  # noqa: F841 - a local must not reach the log
        raise RuntimeError("user brief: buy my course")

    monkeypatch.setattr("shared.api.http._read_body", explode)
    caplog.set_level(logging.INFO, logger="reel")
    resp = call("usage", "/v1/usage", dev_container, method="GET")
    assert resp.status_code == 500
    [error] = [r for r in caplog.records if r.getMessage() == "unhandled_error"]
    text = JsonFormatter().format(error)
    line = json.loads(text)
    frames = line["exception"][0]["frames"]
    assert {"file", "line", "function"} == set(frames[-1])
    assert frames[-1]["function"] == "explode"
    assert frames[-1]["file"] == "tests/unit/test_http_dispatch.py"
    assert any(f["file"] == "shared/api/http.py" and f["function"] == "dispatch" for f in frames)
    for leak in ("buy my course", "hunter2", "Traceback"):
        assert leak not in text


@pytest.mark.parametrize(
    ("function", "path", "method", "status"),
    [
        ("usage", "/v1/usage", "GET", 401),
        ("create", "/v1/create", "POST", 415),
        ("library", "/v1/library/assets", "POST", 415),
    ],
)
def test_error_lines_carry_the_matched_route(
    dev_container: Container,
    caplog: pytest.LogCaptureFixture,
    function: str,
    path: str,
    method: str,
    status: int,
) -> None:
    caplog.set_level(logging.INFO, logger="reel")
    resp = call(function, path, dev_container, method=method, data=b"x")
    assert resp.status_code == status
    assert finished(caplog)["route"] == path


def test_unmatched_path_has_no_route(
    dev_container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reel")
    assert call("usage", "/v1/nope", dev_container).status_code == 404
    assert finished(caplog)["route"] is None


@pytest.mark.parametrize("sent", [ORIGIN, ORIGIN + "/"])
def test_cors_echoes_the_configured_origin(dev_container: Container, sent: str) -> None:
    for method in ("GET", "OPTIONS"):
        resp = call("health", "/healthz", dev_container, method=method, headers={"Origin": sent})
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN


def _request(body: dict[str, Any]) -> ApiRequest:
    return ApiRequest("POST", "/", {}, {}, json.dumps(body).encode(), "r", {}, None, "http://x/")


DRAFT = "0b9c6c1e-4a55-4c5e-9a43-8c7a3d3c0a11"


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        (m.CreateRequest, {"brief": "b", "platform": "tiktok", "variants": True}, "variants"),
        (m.CreateRequest, {"brief": "b", "platform": "tiktok", "variants": "2"}, "variants"),
        (m.CreateRequest, {"brief": "b", "platform": "tiktok", "duration_seconds": 30.5},
         "duration_seconds"),
        (m.CreateRequest, {"brief": 7, "platform": "tiktok"}, "brief"),
        (m.RegenerateRequest, {"draft_id": DRAFT, "mode": "full", "variants": "2"}, "variants"),
        (m.DraftPatchRequest, {"duration_seconds": "30"}, "duration_seconds"),
        (m.AdminBoostRequest, {"user_id": "u", "days": "30"}, "days"),
        (m.CreateAssetRequest, {"draft_id": DRAFT, "variant_id": DRAFT, "tags": [1]}, "tags"),
    ],
)  # fmt: skip
def test_json_bodies_are_validated_strictly(
    model: type[BaseModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationFailed) as err:
        _request(body).parse(model)
    assert [field] in [f["loc"][:1] for f in err.value.details["fields"]]


def test_strict_json_still_reads_enums_and_defaults() -> None:
    parsed = _request({"brief": "b", "platform": "tiktok", "variants": 2}).parse(m.CreateRequest)
    assert parsed.platform == m.Platform.TIKTOK
    assert parsed.variants == 2
    assert parsed.duration_seconds == 30


def test_an_integral_float_is_an_integer_as_json_schema_says() -> None:
    body = {"brief": "b", "platform": "tiktok", "variants": 2.0, "duration_seconds": 30.0}
    parsed = _request(body).parse(m.CreateRequest)
    assert (parsed.variants, parsed.duration_seconds) == (2, 30)
    assert type(parsed.variants) is int


@pytest.mark.parametrize("model", [m.AdminSubscriptionRequest, m.AdminBoostRequest])
@pytest.mark.parametrize(
    "user_id", ["a b", "a\n", "\tx", "a\x00b", "a\x7f", "x" * 129, "", "a\u200bb"]
)
def test_admin_user_ids_follow_the_token_subject_rule(model: type[BaseModel], user_id: str) -> None:
    assert not is_valid_subject(user_id)
    with pytest.raises(ValidationFailed) as err:
        _request({"user_id": user_id, "plan": "pro"} if "plan" in model.model_fields
                 else {"user_id": user_id}).parse(model)  # fmt: skip
    if "\x00" not in user_id:  # NUL is refused body-wide, before any field is looked at
        assert ["user_id"] in [f["loc"][:1] for f in err.value.details["fields"]]


@pytest.mark.parametrize("user_id", ["auth0|abc", "google-oauth2|1234", "Xy7Qz0aBcD", "x" * 128])
def test_admin_accepts_every_subject_a_token_may_carry(user_id: str) -> None:
    assert is_valid_subject(user_id)
    body = _request({"user_id": user_id, "plan": "pro"}).parse(m.AdminSubscriptionRequest)
    assert (body.user_id, body.plan) == (user_id, PlanName.PRO)
    boost = _request({"user_id": user_id}).parse(m.AdminBoostRequest)
    assert boost.days == BOOST_DAYS


def test_plan_bounds_in_the_models_come_from_the_plan_table() -> None:
    create = m.CreateRequest.model_json_schema()["properties"]["variants"]
    assert create["maximum"] == max(p.max_variants for p in PLANS.values())
    plan = m.AdminSubscriptionRequest.model_json_schema()
    assert sorted(plan["$defs"]["PlanName"]["enum"]) == sorted(PlanName)


# --- Behind the gateway (terraform public_invokers = false) ----------------------------------
# API Gateway calls a private function with its own Google ID token in Authorization and
# forwards the caller's in X-Forwarded-Authorization; AUTH_HEADER says which one to verify.


def _bearer_route() -> Any:
    from shared.api.routes import ROUTES

    return next(r for r in ROUTES if r.auth == "bearer")


@pytest.mark.parametrize(
    ("auth_header", "caller_in", "gateway_in"),
    [
        ("Authorization", "Authorization", "X-Forwarded-Authorization"),
        ("X-Forwarded-Authorization", "X-Forwarded-Authorization", "Authorization"),
    ],
)
def test_the_caller_token_is_read_from_auth_header(
    auth_header: str, caller_in: str, gateway_in: str
) -> None:
    from devtools.devtoken import mint_dev_token
    from shared.api.http import _authenticate
    from shared.config import DEV_HS256_SECRET

    container = Container(load_settings({"AUTH_HEADER": auth_header}))
    caller = mint_dev_token("caller-1", secret=DEV_HS256_SECRET)
    headers = {caller_in: f"Bearer {caller}", gateway_in: "Bearer google-id-token-of-the-gateway"}
    with _app.test_request_context("/v1/usage", headers=headers):
        principal = _authenticate(_bearer_route(), flask.request, container)
    assert principal is not None
    assert principal.user_id == "caller-1"


def test_auth_header_accepts_only_the_two_known_headers() -> None:
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match="^AUTH_HEADER:"):
        load_settings({"AUTH_HEADER": "X-User"})
