import io
import json
import logging

import pytest

from shared.errors import BadRequest
from shared.observability.logging import (
    REDACTED,
    JsonFormatter,
    bind,
    log_event,
    redact,
    resolve_request_id,
    trace_from_headers,
)


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"reel.test.{id(stream)}")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_redacts_nested_secrets_and_user_content() -> None:
    data = {
        "user": "u1",
        "headers": {"Authorization": "Bearer abc", "X-Request-Id": "r1"},
        "items": [{"brief": "drink water", "nested": {"api_key": "k", "ok": 1}}],
        "stripe_secret": "s",
        "x-upstash-signature": "sig",
        "variant": {"hook": "h", "script": "s", "caption": "c", "hashtags": ["#a"]},
    }
    out = redact(data)
    assert out["user"] == "u1"
    assert out["headers"] == {"Authorization": REDACTED, "X-Request-Id": "r1"}
    assert out["items"][0]["brief"] == REDACTED
    assert out["items"][0]["nested"] == {"api_key": REDACTED, "ok": 1}
    assert out["stripe_secret"] == REDACTED
    assert out["x-upstash-signature"] == REDACTED
    assert set(out["variant"].values()) == {REDACTED}
    assert data["headers"]["Authorization"] == "Bearer abc"  # input untouched


def test_json_line_shape_with_context_and_trace() -> None:
    logger, stream = capture()
    with bind(request_id="req-1", user_id="u1", trace="projects/p/traces/abc"):
        with bind(generation_id="g1"):
            log_event(logger, "job_started", attempt=2, prompt="secret words")
    line = json.loads(stream.getvalue())
    assert line["severity"] == "INFO"
    assert line["message"] == "job_started"
    assert line["event"] == "job_started"
    assert line["request_id"] == "req-1"
    assert line["user_id"] == "u1"
    assert line["generation_id"] == "g1"
    assert line["logging.googleapis.com/trace"] == "projects/p/traces/abc"
    assert line["attempt"] == 2
    assert line["prompt"] == REDACTED
    assert "secret words" not in stream.getvalue()


def test_context_does_not_leak_between_blocks() -> None:
    logger, stream = capture()
    with bind(request_id="a"):
        pass
    log_event(logger, "outside")
    assert "request_id" not in json.loads(stream.getvalue())


def test_exception_logs_type_not_message() -> None:
    logger, stream = capture()
    try:
        raise ValueError("user brief: buy my course")
    except ValueError:
        logger.exception("boom")
    line = json.loads(stream.getvalue())
    assert line["exception_type"] == "ValueError"
    assert "buy my course" not in stream.getvalue()


def test_request_id_kept_generated_or_refused() -> None:
    assert resolve_request_id("abc-123_X.y") == "abc-123_X.y"
    generated = resolve_request_id(None)
    assert len(generated) == 24
    assert resolve_request_id("") != ""
    for bad in ("a b", "x" * 129, "é", "a/b"):
        with pytest.raises(BadRequest) as err:
            resolve_request_id(bad)
        assert err.value.code == "INVALID_REQUEST_ID"


def test_trace_headers() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert trace_from_headers({"traceparent": tp}, "proj") == (
        "projects/proj/traces/0af7651916cd43dd8448eb211c80319c"
    )
    assert trace_from_headers({"X-Cloud-Trace-Context": "105445aa7843bc8bf206b/1;o=1"}, None) == (
        "105445aa7843bc8bf206b"
    )
    assert trace_from_headers({"traceparent": "garbage"}, "p") is None
    assert trace_from_headers({}, "p") is None
