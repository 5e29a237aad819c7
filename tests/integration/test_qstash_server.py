"""The development QStash server (devtools.qstash_server) driven by the real SDK through our
own ``QStashQueue``, delivering to an endpoint that verifies signatures with the worker's
``SignatureVerifier``: what the rehearsal relies on."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from qstash import QStash

from devtools.qstash_server import CronSpec, QStashServer, default_backoff_s
from devtools.qstash_signing import (
    TEST_CURRENT_KEY,
    TEST_NEXT_KEY,
    StubResponse,
    WorkerStub,
    scripted,
)
from shared.config import load_settings
from shared.errors import ServiceUnavailable
from shared.queue import (
    WORKER_FAILED_PATH,
    WORKER_GENERATE_PATH,
    FailureCallback,
    JobPayload,
    queue_from_settings,
)

TOKEN = "qstash-test-token"
JOB = JobPayload(
    generation_id="9b2f6c1e-0000-4000-8000-0000000000aa",
    user_id="user-1",
    lease_id="9b2f6c1e-0000-4000-8000-0000000000aa",
    request_id="req-qs-1",
)


@pytest.fixture
def qstash() -> Iterator[QStashServer]:
    # Backoff shrunk 1000x: 12 ms, 148 ms, 1.8 s instead of 12 s, 2.5 min, 30 min.
    with QStashServer(
        token=TOKEN,
        current_signing_key=TEST_CURRENT_KEY,
        next_signing_key=TEST_NEXT_KEY,
        backoff_scale=0.001,
    ) as server:
        yield server


def queue_for(qstash: QStashServer, worker_url: str, retries: int = 3) -> object:
    """The production adapter, built from settings exactly as a deployed function builds it."""
    settings = load_settings(
        {
            "QUEUE_BACKEND": "qstash",
            "QSTASH_URL": qstash.url,
            "QSTASH_TOKEN": TOKEN,
            "QSTASH_RETRIES": str(retries),
            "WORKER_URL": worker_url,
        }
    )
    return queue_from_settings(settings)


def test_sdk_publish_is_delivered_signed_and_retried_with_a_fresh_jti(
    qstash: QStashServer,
) -> None:
    busy = StubResponse(503, b'{"error":"busy"}')
    with WorkerStub(scripted(busy, busy, StubResponse(200))) as worker:
        message_id = queue_for(qstash, worker.url).enqueue(JOB)  # type: ignore[attr-defined]
        assert message_id.startswith("msg_")
        assert worker.wait_for(3, WORKER_GENERATE_PATH)
        assert qstash.wait_for(lambda: qstash.messages[message_id].state == "delivered")

    deliveries = worker.requests_to(WORKER_GENERATE_PATH)
    assert [r.verified for r in deliveries] == [True, True, True]
    assert [r.headers["Upstash-Retried"] for r in deliveries] == ["0", "1", "2"]
    assert {r.headers["Upstash-Message-Id"] for r in deliveries} == {message_id}
    assert {r.headers["X-Request-Id"] for r in deliveries} == {"req-qs-1"}
    assert all(JobPayload.from_body(r.body) == JOB for r in deliveries)
    jtis = [a.jti for a in qstash.attempts_to(worker.url + WORKER_GENERATE_PATH)]
    assert len(set(jtis)) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(deliveries)]
    assert gaps[1] > gaps[0]  # e^(2.5 n) backoff grows


def test_the_failure_callback_follows_the_last_retry(qstash: QStashServer) -> None:
    routes = {
        WORKER_GENERATE_PATH: scripted(StubResponse(500, b"down")),
        WORKER_FAILED_PATH: scripted(StubResponse(200)),
    }
    with WorkerStub(lambda r: routes[r.path](r)) as worker:
        queue_for(qstash, worker.url, retries=2).enqueue(JOB)  # type: ignore[attr-defined]
        assert worker.wait_for(1, WORKER_FAILED_PATH)

    assert len(worker.requests_to(WORKER_GENERATE_PATH)) == 3  # first attempt + 2 retries
    [callback] = worker.requests_to(WORKER_FAILED_PATH)
    assert callback.verified  # signed for the callback URL
    parsed = FailureCallback.from_body(callback.body)
    assert parsed.job() == JOB
    assert (parsed.status, parsed.retried, parsed.max_retries) == (500, 2, 2)
    assert parsed.url == worker.url + WORKER_GENERATE_PATH


def test_a_non_retryable_489_fails_the_message_at_once(qstash: QStashServer) -> None:
    refused = StubResponse(489, b"undeliverable", {"Upstash-NonRetryable-Error": "true"})
    routes = {
        WORKER_GENERATE_PATH: scripted(refused, StubResponse(200)),
        WORKER_FAILED_PATH: scripted(StubResponse(200)),
    }
    with WorkerStub(lambda r: routes[r.path](r)) as worker:
        message_id = queue_for(qstash, worker.url, retries=3).enqueue(JOB)  # type: ignore[attr-defined]
        assert worker.wait_for(1, WORKER_FAILED_PATH)

    assert qstash.messages[message_id].state == "failed"
    assert len(worker.requests_to(WORKER_GENERATE_PATH)) == 1
    [callback] = worker.requests_to(WORKER_FAILED_PATH)
    assert FailureCallback.from_body(callback.body).status == 489


def test_a_deduplication_id_is_delivered_once(qstash: QStashServer) -> None:
    with WorkerStub(scripted(StubResponse(200))) as worker:
        queue = queue_for(qstash, worker.url)
        first = queue.enqueue(JOB)  # type: ignore[attr-defined]
        again = queue.enqueue(JOB)  # type: ignore[attr-defined]
        assert first == again
        assert qstash.wait_for(qstash.settled)
    assert len(worker.requests_to(WORKER_GENERATE_PATH)) == 1


def test_a_wrong_token_is_refused(qstash: QStashServer) -> None:
    settings = load_settings(
        {"QSTASH_URL": qstash.url, "QSTASH_TOKEN": "wrong", "WORKER_URL": "http://127.0.0.1:9"}
    )
    with pytest.raises(ServiceUnavailable):
        queue_from_settings(settings.replace(queue_backend="qstash")).enqueue(JOB)


def test_schedules_publish_on_their_minutes(qstash: QStashServer) -> None:
    with WorkerStub(scripted(StubResponse(200))) as worker:
        client = QStash(TOKEN, base_url=qstash.url)
        schedule_id = client.schedule.create(
            destination=worker.url + "/worker/sweep", cron="*/5 * * * *", body="{}"
        )
        assert [s.schedule_id for s in client.schedule.list()] == [schedule_id]
        assert qstash.tick(datetime(2026, 11, 29, 10, 3, tzinfo=UTC)) == []
        [message_id] = qstash.tick(datetime(2026, 11, 29, 10, 5, tzinfo=UTC))
        assert worker.wait_for(1, "/worker/sweep")
        client.schedule.delete(schedule_id)
        assert qstash.tick(datetime(2026, 11, 29, 10, 10, tzinfo=UTC)) == []

    [sweep] = worker.requests_to("/worker/sweep")
    assert sweep.verified
    assert sweep.headers["Upstash-Schedule-Id"] == schedule_id
    assert sweep.headers["Upstash-Message-Id"] == message_id
    assert json.loads(sweep.body) == {}


@pytest.mark.parametrize(
    ("cron", "at", "expected"),
    [
        ("*/5 * * * *", datetime(2026, 1, 1, 0, 10, tzinfo=UTC), True),
        ("*/5 * * * *", datetime(2026, 1, 1, 0, 11, tzinfo=UTC), False),
        ("0 3 * * 0", datetime(2026, 11, 29, 3, 0, tzinfo=UTC), True),  # a Sunday
        ("0 3 * * 1-5", datetime(2026, 11, 29, 3, 0, tzinfo=UTC), False),
        ("15,45 * 1 * *", datetime(2026, 12, 1, 7, 45, tzinfo=UTC), True),
    ],
)
def test_cron_matching(cron: str, at: datetime, expected: bool) -> None:
    assert CronSpec.parse(cron).matches(at) is expected


def test_default_backoff_is_qstash_s() -> None:
    assert [round(default_backoff_s(n)) for n in (1, 2, 3)] == [12, 148, 1808]
