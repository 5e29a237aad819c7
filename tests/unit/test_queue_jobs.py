"""JobPayload and FailureCallback: canonical bodies and strict parsing."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from shared.errors import BadRequest, ValidationFailed
from shared.queue import FailureCallback, JobPayload


def make_job(**overrides: str) -> JobPayload:
    fields = {
        "generation_id": "3f1c1a52-7d0c-4a53-9b76-2d7c1f0c9a11",
        "user_id": "user-42",
        "lease_id": "3f1c1a52-7d0c-4a53-9b76-2d7c1f0c9a11",
        "request_id": "req-abc.123_x",
    }
    return JobPayload(**{**fields, **overrides})


def test_body_is_canonical_and_round_trips() -> None:
    job = make_job()
    body = job.to_body()
    assert body == json.dumps(job.model_dump(), sort_keys=True, separators=(",", ":")).encode()
    assert b" " not in body
    assert JobPayload.from_body(body) == job


def test_payload_is_frozen() -> None:
    job = make_job()
    with pytest.raises(ValidationError):
        job.user_id = "someone-else"  # type: ignore[misc]


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe{}", b"", b"{"])
def test_garbage_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        JobPayload.from_body(body)


@pytest.mark.parametrize(
    "data",
    [
        [],
        "a string",
        {"generation_id": "g", "user_id": "u", "lease_id": "l"},  # missing request_id
        {"generation_id": "g", "user_id": "u", "lease_id": "l", "request_id": "r", "x": 1},
        {"generation_id": 1, "user_id": "u", "lease_id": "l", "request_id": "r"},
        {"generation_id": "", "user_id": "u", "lease_id": "l", "request_id": "r"},
        {"generation_id": "g", "user_id": "u", "lease_id": "l", "request_id": "bad id!"},
    ],
)
def test_wrong_shape_is_validation_failed(data: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        JobPayload.from_body(json.dumps(data).encode())
    assert info.value.details["fields"]


def test_failure_callback_parses_qstash_shape_and_decodes_job() -> None:
    job = make_job()
    body = json.dumps(
        {
            "status": 500,
            "header": {"Content-Type": ["text/plain"]},
            "body": base64.b64encode(b"oops").decode(),
            "retried": 3,
            "maxRetries": 3,
            "dlqId": "1725323658779-0",
            "sourceMessageId": "msg_123",
            "url": "https://worker.example/worker/generate",
            "method": "POST",
            "sourceHeader": {"Upstash-Forward-X-Request-Id": ["req-abc.123_x"]},
            "sourceBody": base64.b64encode(job.to_body()).decode(),
            "notBefore": "1725323658",
            "createdAt": "1725323658",
            "someFutureField": {"nested": True},
        }
    ).encode()
    callback = FailureCallback.from_body(body)
    assert (callback.status, callback.retried, callback.max_retries) == (500, 3, 3)
    assert callback.source_message_id == "msg_123"
    assert callback.dlq_id == "1725323658779-0"
    assert callback.job() == job


def test_failure_callback_needs_source_body() -> None:
    with pytest.raises(ValidationFailed):
        FailureCallback.from_body(b'{"status": 500}')


@pytest.mark.parametrize(
    "source_body",
    [
        "%%% not base64 %%%",
        base64.b64encode(b"not json").decode(),
    ],
)
def test_failure_callback_with_garbage_source_body_is_bad_request(source_body: str) -> None:
    callback = FailureCallback.from_body(json.dumps({"sourceBody": source_body}).encode())
    with pytest.raises(BadRequest):
        callback.job()


def test_failure_callback_with_wrong_job_shape_is_validation_failed() -> None:
    source = base64.b64encode(b'{"generation_id": "g"}').decode()
    callback = FailureCallback.from_body(json.dumps({"sourceBody": source}).encode())
    with pytest.raises(ValidationFailed):
        callback.job()
