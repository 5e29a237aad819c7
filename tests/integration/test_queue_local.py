"""LocalQueue over real HTTP to a worker stub that verifies QStash signatures."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator

import jwt
import pytest

from devtools.local_queue import LocalQueue
from devtools.net import free_port
from devtools.qstash_signing import (
    TEST_CURRENT_KEY,
    Responder,
    StubResponse,
    WorkerStub,
    by_path,
    scripted,
)
from shared.errors import ServiceUnavailable
from shared.queue import (
    WORKER_FAILED_PATH,
    WORKER_GENERATE_PATH,
    FailureCallback,
    JobPayload,
)

FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, "timeout_s": 5}


def make_job(n: int = 1) -> JobPayload:
    gid = f"7e0e3b1a-0000-4000-8000-{n:012d}"
    return JobPayload(generation_id=gid, user_id="user-1", lease_id=gid, request_id=f"req-{n}")


@pytest.fixture
def open_queues() -> Iterator[list[LocalQueue]]:
    """Queues made by a test are closed after it, even when it fails."""
    queues: list[LocalQueue] = []
    yield queues
    for queue in queues:
        queue.close()


def start_queue(open_queues: list[LocalQueue], worker_url: str, **options: object) -> LocalQueue:
    queue = LocalQueue(worker_url=worker_url, signing_key=TEST_CURRENT_KEY, **{**FAST, **options})
    open_queues.append(queue)
    return queue


def worker(responder: Responder) -> WorkerStub:
    return WorkerStub(by_path({WORKER_GENERATE_PATH: responder, WORKER_FAILED_PATH: ok()}))


def ok() -> Responder:
    return scripted(StubResponse(200))


def test_delivered_once_with_qstash_headers(open_queues: list[LocalQueue]) -> None:
    job = make_job()
    with worker(ok()) as stub:
        queue = start_queue(open_queues, stub.url)
        message_id = queue.enqueue(job)
        assert queue.join_idle(5)

    [request] = stub.requests
    assert request.path == WORKER_GENERATE_PATH
    assert request.verified is True
    assert request.headers["Upstash-Message-Id"] == message_id
    assert request.headers["Upstash-Retried"] == "0"
    assert request.headers["X-Request-Id"] == job.request_id
    assert request.headers["Content-Type"] == "application/json"
    assert JobPayload.from_body(request.body) == job


def test_enqueue_returns_before_delivery(open_queues: list[LocalQueue]) -> None:
    release = threading.Event()
    with worker(scripted(StubResponse(200, hold=release))) as stub:
        queue = start_queue(open_queues, stub.url)
        started = time.monotonic()
        queue.enqueue(make_job())
        assert time.monotonic() - started < 0.5
        assert stub.wait_for(1, WORKER_GENERATE_PATH)
        assert queue.join_idle(0.1) is False  # still in flight: the worker holds it
        release.set()
        assert queue.join_idle(5) is True


def test_retries_503_then_succeeds(open_queues: list[LocalQueue]) -> None:
    responder = scripted(StubResponse(503), StubResponse(503), StubResponse(200))
    with worker(responder) as stub:
        queue = start_queue(open_queues, stub.url, retries=3)
        message_id = queue.enqueue(make_job())
        assert queue.join_idle(5)

    attempts = stub.requests_to(WORKER_GENERATE_PATH)
    assert [r.headers["Upstash-Retried"] for r in attempts] == ["0", "1", "2"]
    assert {r.headers["Upstash-Message-Id"] for r in attempts} == {message_id}
    assert all(r.verified for r in attempts)  # the stub accepts each token once
    # Re-signed per attempt like QStash: a fresh token (jti) each time, so the worker's
    # replay check never refuses a genuine retry.
    tokens = [r.headers["Upstash-Signature"] for r in attempts]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3
    assert stub.requests_to(WORKER_FAILED_PATH) == []


def test_always_500_ends_in_one_signed_failure_callback(open_queues: list[LocalQueue]) -> None:
    job = make_job()
    with worker(scripted(StubResponse(500, b"worker broke"))) as stub:
        queue = start_queue(open_queues, stub.url, retries=2)
        message_id = queue.enqueue(job)
        assert queue.join_idle(5)

    attempts = stub.requests_to(WORKER_GENERATE_PATH)
    assert [r.headers["Upstash-Retried"] for r in attempts] == ["0", "1", "2"]
    [callback_request] = stub.requests_to(WORKER_FAILED_PATH)
    assert callback_request.verified is True
    assert callback_request.headers["Content-Type"] == "application/json"
    callback = FailureCallback.from_body(callback_request.body)
    assert callback.job() == job
    assert (callback.status, callback.retried, callback.max_retries) == (500, 2, 2)
    assert callback.source_message_id == message_id
    assert callback.url == stub.url + WORKER_GENERATE_PATH
    raw = json.loads(callback_request.body)
    assert base64.b64decode(raw["body"]) == b"worker broke"
    assert raw["sourceHeader"]["X-Request-Id"] == [job.request_id]
    assert raw["dlqId"]


def test_a_non_retryable_489_goes_straight_to_the_failure_callback(
    open_queues: list[LocalQueue],
) -> None:
    """QStash's "do not retry" (489 + ``Upstash-NonRetryable-Error: true``) ends retries."""
    refused = StubResponse(489, b"undeliverable", {"Upstash-NonRetryable-Error": "true"})
    job = make_job()
    with worker(scripted(refused, StubResponse(200))) as stub:
        queue = start_queue(open_queues, stub.url, retries=3)
        queue.enqueue(job)
        assert queue.join_idle(5)

    assert [r.headers["Upstash-Retried"] for r in stub.requests_to(WORKER_GENERATE_PATH)] == ["0"]
    [callback_request] = stub.requests_to(WORKER_FAILED_PATH)
    callback = FailureCallback.from_body(callback_request.body)
    assert (callback.job(), callback.status) == (job, 489)


def test_a_489_without_the_header_is_retried_like_any_failure(
    open_queues: list[LocalQueue],
) -> None:
    with worker(scripted(StubResponse(489), StubResponse(200))) as stub:
        queue = start_queue(open_queues, stub.url, retries=3)
        queue.enqueue(make_job())
        assert queue.join_idle(5)

    assert [r.headers["Upstash-Retried"] for r in stub.requests_to(WORKER_GENERATE_PATH)] == [
        "0",
        "1",
    ]
    assert stub.requests_to(WORKER_FAILED_PATH) == []


def test_failure_callback_is_retried_too(open_queues: list[LocalQueue]) -> None:
    callbacks = scripted(StubResponse(503), StubResponse(200))
    stub = WorkerStub(
        by_path(
            {
                WORKER_GENERATE_PATH: scripted(StubResponse(500)),
                WORKER_FAILED_PATH: callbacks,
            }
        )
    )
    with stub:
        queue = start_queue(open_queues, stub.url, retries=1)
        queue.enqueue(make_job())
        assert queue.join_idle(5)
    assert len(stub.requests_to(WORKER_GENERATE_PATH)) == 2
    assert [r.headers["Upstash-Retried"] for r in stub.requests_to(WORKER_FAILED_PATH)] == [
        "0",
        "1",
    ]


def test_connection_refused_is_retried_then_reported(
    open_queues: list[LocalQueue], caplog: pytest.LogCaptureFixture
) -> None:
    queue = start_queue(open_queues, f"http://127.0.0.1:{free_port()}", retries=2)
    with caplog.at_level("INFO", logger="reel.queue"):
        queue.enqueue(make_job())
        assert queue.join_idle(5)
    messages = [r.getMessage() for r in caplog.records]
    gave_up = [m.split("kind=")[1].split()[0] for m in messages if "gave up" in m]
    # The job, then its failure callback (same dead worker), each give up after 3 attempts.
    assert gave_up == ["job", "failure_callback"]
    assert sum("error=ConnectError" in m for m in messages) == 6


def test_retry_after_is_honoured(open_queues: list[LocalQueue]) -> None:
    responder = scripted(StubResponse(503, headers={"Retry-After": "1"}), StubResponse(200))
    with worker(responder) as stub:
        queue = start_queue(open_queues, stub.url, backoff_base_s=0.01, backoff_cap_s=5.0)
        queue.enqueue(make_job())
        assert queue.join_idle(5)
    first, second = stub.requests_to(WORKER_GENERATE_PATH)
    assert second.at - first.at >= 0.95


def test_retry_after_is_bounded_by_the_cap(open_queues: list[LocalQueue]) -> None:
    responder = scripted(StubResponse(503, headers={"Retry-After": "3600"}), StubResponse(200))
    with worker(responder) as stub:
        queue = start_queue(open_queues, stub.url, backoff_base_s=0.01, backoff_cap_s=0.2)
        queue.enqueue(make_job())
        assert queue.join_idle(5)
    first, second = stub.requests_to(WORKER_GENERATE_PATH)
    assert 0.15 <= second.at - first.at < 1.5


def test_slow_job_does_not_block_others(open_queues: list[LocalQueue]) -> None:
    release = threading.Event()

    def respond(request: object) -> StubResponse:
        body = json.loads(request.body)  # type: ignore[attr-defined]
        return StubResponse(200, hold=release if body["request_id"] == "req-1" else None)

    with worker(respond) as stub:
        queue = start_queue(open_queues, stub.url)
        queue.enqueue(make_job(1))
        assert stub.wait_for(1, WORKER_GENERATE_PATH)
        for n in range(2, 5):
            queue.enqueue(make_job(n))
        assert stub.wait_for(4, WORKER_GENERATE_PATH, timeout_s=5)
        release.set()
        assert queue.join_idle(5)


def test_same_generation_is_deduplicated(open_queues: list[LocalQueue]) -> None:
    with worker(ok()) as stub:
        queue = start_queue(open_queues, stub.url)
        first = queue.enqueue(make_job())
        assert queue.enqueue(make_job()) == first
        assert queue.enqueue(make_job(2)) != first
        assert queue.join_idle(5)
    assert len(stub.requests_to(WORKER_GENERATE_PATH)) == 2


def test_close_stops_threads_and_refuses_new_jobs(open_queues: list[LocalQueue]) -> None:
    with worker(ok()) as stub:
        queue = start_queue(open_queues, stub.url)
        queue.enqueue(make_job())
        assert queue.join_idle(5)
        threads = list(queue._threads)  # this queue's own threads, not other tests' queues
        assert threads
        queue.close()
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(ServiceUnavailable):
        queue.enqueue(make_job(2))
    queue.close()  # idempotent


def test_close_drops_waiting_retries(open_queues: list[LocalQueue]) -> None:
    with worker(scripted(StubResponse(503))) as stub:
        queue = start_queue(open_queues, stub.url, backoff_base_s=30, backoff_cap_s=30)
        queue.enqueue(make_job())
        assert stub.wait_for(1, WORKER_GENERATE_PATH)
        assert queue.join_idle(0.2) is False  # a retry is waiting
        started = time.monotonic()
        queue.close()
        assert time.monotonic() - started < 2
    assert len(stub.requests) == 1


def test_threads_start_lazily(open_queues: list[LocalQueue]) -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("reel-local-queue")}
    queue = start_queue(open_queues, "http://127.0.0.1:1")
    after = {t for t in threading.enumerate() if t.name.startswith("reel-local-queue")}
    assert after == before
    assert queue.join_idle(0) is True


def test_many_producers_each_job_delivered_once(open_queues: list[LocalQueue]) -> None:
    with worker(ok()) as stub:
        queue = start_queue(open_queues, stub.url)

        def produce(offset: int) -> None:
            for n in range(offset, offset + 25):
                queue.enqueue(make_job(n))

        producers = [threading.Thread(target=produce, args=(k * 100,)) for k in range(8)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join()
        assert queue.join_idle(15)

    delivered = [JobPayload.from_body(r.body).generation_id for r in stub.requests]
    assert len(delivered) == 200
    assert len(set(delivered)) == 200
    assert all(r.verified for r in stub.requests)
