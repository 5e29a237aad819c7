"""QStashQueue through the real SDK client, pointed at a local server speaking QStash's wire."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest
from qstash import QStash

from devtools.compose import queue_from_settings as dev_queue_from_settings
from devtools.local_queue import LocalQueue
from devtools.net import free_port
from devtools.qstash_signing import StubResponse, StubServer, scripted
from shared.config import ConfigError, load_settings
from shared.errors import ServiceUnavailable
from shared.queue import JobPayload, QStashQueue, queue_from_settings
from shared.queue.factory import PUBLISH_TIMEOUT

WORKER = "https://worker.example.test"
JOB = JobPayload(
    generation_id="9b2f6c1e-0000-4000-8000-000000000001",
    user_id="user-1",
    lease_id="9b2f6c1e-0000-4000-8000-000000000001",
    request_id="req-1",
)
OK = StubResponse(200, json.dumps({"messageId": "msg_abc", "deduplicated": False}).encode())


@pytest.fixture
def qstash_api() -> Iterator[StubServer]:
    with StubServer(scripted(OK)) as server:
        yield server


def make_queue(base_url: str, retries: int = 3) -> QStashQueue:
    client = QStash("test-token", base_url=base_url, retry=False)
    return QStashQueue(client, worker_url=WORKER + "/", retries=retries, timeout_s=300)


def test_publish_request_has_qstash_headers_and_body(qstash_api: StubServer) -> None:
    message_id = make_queue(qstash_api.url, retries=4).enqueue(JOB)

    assert message_id == "msg_abc"
    [request] = qstash_api.requests
    assert unquote(request.path) == f"/v2/publish/{WORKER}/worker/generate"
    assert request.headers["Authorization"] == "Bearer test-token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Upstash-Retries"] == "4"
    assert request.headers["Upstash-Failure-Callback"] == f"{WORKER}/worker/failed"
    assert request.headers["Upstash-Deduplication-Id"] == JOB.generation_id
    assert request.headers["Upstash-Forward-X-Request-Id"] == "req-1"
    assert request.headers["Upstash-Timeout"] == "300s"
    assert JobPayload.from_body(request.body) == JOB


def test_deduplicated_publish_returns_the_message_id() -> None:
    answer = StubResponse(200, b'{"messageId": "msg_first", "deduplicated": true}')
    with StubServer(scripted(answer)) as server:
        assert make_queue(server.url).enqueue(JOB) == "msg_first"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(StubResponse(500, b"boom"), id="500"),
        pytest.param(StubResponse(429, b"slow down"), id="429-burst"),
        pytest.param(
            StubResponse(429, b"", headers={"RateLimit-Limit": "500", "RateLimit-Remaining": "0"}),
            id="429-daily",
        ),
        pytest.param(StubResponse(401, b"bad token"), id="401"),
        pytest.param(StubResponse(200, b"not json"), id="200-garbage"),
        pytest.param(StubResponse(200, b'{"unexpected": 1}'), id="200-no-message-id"),
    ],
)
def test_failed_publish_is_service_unavailable(answer: StubResponse) -> None:
    with StubServer(scripted(answer)) as server, pytest.raises(ServiceUnavailable) as info:
        make_queue(server.url).enqueue(JOB)
    assert info.value.retry_after == 1


def test_connection_refused_is_service_unavailable() -> None:
    with pytest.raises(ServiceUnavailable) as info:
        make_queue(f"http://127.0.0.1:{free_port()}").enqueue(JOB)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_factory_builds_a_bounded_qstash_queue(qstash_api: StubServer) -> None:
    settings = load_settings(
        {
            "QUEUE_BACKEND": "qstash",
            "QSTASH_TOKEN": "tok",
            "QSTASH_URL": qstash_api.url,
            "QSTASH_RETRIES": "5",
            "WORKER_URL": WORKER,
        }
    )
    queue = queue_from_settings(settings)
    assert isinstance(queue, QStashQueue)
    assert qstash_api.requests == []  # nothing connects until the first publish
    assert queue._client.http._client.timeout == PUBLISH_TIMEOUT

    assert queue.enqueue(JOB) == "msg_abc"
    [request] = qstash_api.requests
    assert request.headers["Upstash-Retries"] == "5"
    assert request.headers["Upstash-Timeout"] == f"{settings.max_job_runtime_s + 60}s"


def test_factory_qstash_connection_refused_is_quick_service_unavailable() -> None:
    settings = load_settings(
        {
            "QUEUE_BACKEND": "qstash",
            "QSTASH_TOKEN": "tok",
            "QSTASH_URL": f"http://127.0.0.1:{free_port()}",
            "WORKER_URL": WORKER,
        }
    )
    with pytest.raises(ServiceUnavailable):
        queue_from_settings(settings).enqueue(JOB)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"QUEUE_BACKEND": "qstash", "WORKER_URL": WORKER}, "QSTASH_TOKEN"),
        ({"QUEUE_BACKEND": "qstash", "QSTASH_TOKEN": "tok"}, "WORKER_URL"),
    ],
)
def test_factory_refuses_incomplete_qstash_config(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        queue_from_settings(load_settings(env))


def test_factory_defaults_to_local_queue_in_development() -> None:
    queue = dev_queue_from_settings(load_settings({}))
    assert isinstance(queue, LocalQueue)
    queue.close()
