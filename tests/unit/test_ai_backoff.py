"""Full-jitter backoff bounds and the classification of one MiniMax answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ai.client import full_jitter_backoff_s
from shared.ai.errors import (
    PROVIDER_AUTH,
    PROVIDER_BAD_REQUEST,
    PROVIDER_BALANCE,
    PROVIDER_CONTENT_POLICY,
    PROVIDER_RATE_LIMITED,
)
from shared.ai.providers.minimax import interpret_response


@given(
    st.integers(0, 10_000),
    st.floats(0, 1, exclude_max=True),
    st.floats(0.01, 5),
    st.floats(0.01, 60),
)
def test_full_jitter_is_within_zero_and_the_capped_exponential(
    retry: int, r: float, base: float, cap: float
) -> None:
    delay = full_jitter_backoff_s(retry, base_s=base, cap_s=cap, rng=lambda: r)
    assert 0 <= delay <= min(cap, base * 2.0 ** min(retry, 64))
    assert delay <= cap


def test_full_jitter_extremes() -> None:
    assert full_jitter_backoff_s(3, base_s=0.5, cap_s=8, rng=lambda: 0.0) == 0.0
    assert full_jitter_backoff_s(0, base_s=0.5, cap_s=8, rng=lambda: 0.999) == pytest.approx(0.4995)
    assert full_jitter_backoff_s(3, base_s=0.5, cap_s=8, rng=lambda: 0.999) == pytest.approx(3.996)
    assert full_jitter_backoff_s(10, base_s=0.5, cap_s=8, rng=lambda: 0.999) == pytest.approx(7.992)


def body(**fields: Any) -> bytes:
    payload: dict[str, Any] = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "base_resp": {"status_code": 0, "status_msg": "success"},
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }
    payload.update(fields)
    return json.dumps(payload).encode()


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_http_statuses(status: int) -> None:
    reply = interpret_response(status, b"<html>", retry_after="3")
    assert (reply.kind, reply.status, reply.retry_after_s) == ("transient", status, 3.0)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, PROVIDER_BAD_REQUEST),
        (401, PROVIDER_AUTH),
        (402, PROVIDER_BALANCE),
        (403, PROVIDER_AUTH),
        (404, PROVIDER_BAD_REQUEST),
        (422, PROVIDER_BAD_REQUEST),
        (302, PROVIDER_BAD_REQUEST),
    ],
)
def test_permanent_http_statuses(status: int, code: str) -> None:
    reply = interpret_response(status, b"")
    assert (reply.kind, reply.code) == ("permanent", code)


@pytest.mark.parametrize("base", [1000, 1001, 1002, 1013, 1024, 1033, 1039, 1041, 2045, 9999])
def test_transient_base_codes(base: int) -> None:
    reply = interpret_response(200, body(base_resp={"status_code": base}, choices=[]))
    assert (reply.kind, reply.base_code) == ("transient", base)
    assert reply.prompt_tokens == 3


@pytest.mark.parametrize(
    ("base", "code"),
    [
        (1004, PROVIDER_AUTH),
        (2049, PROVIDER_AUTH),
        (1008, PROVIDER_BALANCE),
        (1026, PROVIDER_CONTENT_POLICY),
        (1042, PROVIDER_BAD_REQUEST),
        (2013, PROVIDER_BAD_REQUEST),
        (2056, PROVIDER_RATE_LIMITED),
    ],
)
def test_permanent_base_codes(base: int, code: str) -> None:
    reply = interpret_response(200, body(base_resp={"status_code": base}))
    assert (reply.kind, reply.code, reply.base_code) == ("permanent", code, base)


def test_output_sensitive_is_its_own_kind() -> None:
    assert interpret_response(200, body(base_resp={"status_code": 1027})).kind == (
        "sensitive_output"
    )
    assert interpret_response(200, body(output_sensitive=True)).kind == "sensitive_output"
    reply = interpret_response(200, body(input_sensitive=True))
    assert (reply.kind, reply.code) == ("permanent", PROVIDER_CONTENT_POLICY)


@pytest.mark.parametrize(
    "fields",
    [
        {"choices": []},
        {"choices": None},
        {"choices": [{"message": {"content": "  "}}]},
        {"choices": [{"message": {"content": None}}]},
        {"choices": ["x"]},
    ],
)
def test_empty_content_is_bad_output(fields: dict[str, Any]) -> None:
    assert interpret_response(200, body(**fields)).kind == "bad_output"


def test_ok_reply_carries_content_usage_and_trace() -> None:
    reply = interpret_response(200, body(), trace_id="t-1")
    assert (reply.kind, reply.content, reply.trace_id) == ("ok", "hi", "t-1")
    assert (reply.prompt_tokens, reply.completion_tokens) == (3, 4)


def test_non_json_200_is_transient() -> None:
    assert interpret_response(200, b"<html>gateway</html>").kind == "transient"


def test_odd_usage_values_count_as_zero() -> None:
    reply = interpret_response(200, body(usage={"prompt_tokens": "9", "completion_tokens": -1}))
    assert (reply.prompt_tokens, reply.completion_tokens) == (0, 0)


def test_retry_after_forms() -> None:
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    dated = interpret_response(503, b"", retry_after=future).retry_after_s
    assert dated is not None
    assert 25 <= dated <= 31
    assert interpret_response(503, b"", retry_after="garbage").retry_after_s is None
    assert interpret_response(503, b"", retry_after="-5").retry_after_s == 0.0
    assert interpret_response(503, b"", retry_after="nan").retry_after_s is None
