"""Development queue: QStash's delivery semantics, in-process, over real HTTP.

``enqueue`` only records the job; a few daemon threads (started on first use) POST it to
``{worker_url}/worker/generate`` signed exactly like QStash, retry non-2xx answers and
connection errors with capped exponential backoff (a ``Retry-After`` answer overrides
it), and after the last failed retry — or at once on QStash's "do not retry" answer, 489
with ``Upstash-NonRetryable-Error: true`` — POST one signed, QStash-shaped failure
callback to ``{worker_url}/worker/failed``. Delivery never happens inside ``enqueue``:
the dev server is one process, and a request that waited for its own worker would
deadlock it.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx

from shared.errors import ServiceUnavailable
from shared.queue.jobs import WORKER_FAILED_PATH, WORKER_GENERATE_PATH, JobPayload
from shared.queue.signing import sign_qstash

__all__ = ["LocalQueue", "is_non_retryable", "retry_delay_s"]

logger = logging.getLogger("reel.queue")

# Like QStash: a redelivered generation id within ten minutes is the same message.
DEDUP_WINDOW_S = 600.0
# A slow job must not hold up the others, yet a dev laptop needs no more than a few.
DEFAULT_CONCURRENCY = 4
# close() waits this long for in-flight deliveries; the threads are daemons regardless.
CLOSE_JOIN_S = 5.0

DeliveryKind = Literal["job", "failure_callback"]


def retry_delay_s(
    retried: int, *, base_s: float, cap_s: float, retry_after_s: float | None = None
) -> float:
    """Seconds to wait before retry number ``retried + 1``.

    Exponential (``base_s * 2**retried``) and capped; a ``Retry-After`` from the worker
    replaces the backoff but is capped too, so a dev run never stalls for long.
    """
    if retry_after_s is not None:
        return max(0.0, min(cap_s, retry_after_s))
    return min(cap_s, base_s * 2.0**retried)


def is_non_retryable(status: int, headers: Mapping[str, str]) -> bool:
    """QStash's "do not retry": 489 with ``Upstash-NonRetryable-Error: true``.

    The message goes straight to the dead-letter queue (here: the failure callback), as
    after its last retry.
    """
    return status == 489 and headers.get("Upstash-NonRetryable-Error", "").lower() == "true"


def parse_retry_after_s(value: str | None) -> float | None:
    """Whole seconds from a ``Retry-After`` header; ``None`` if absent or not a number."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One message: the job itself or the failure callback that reports it."""

    kind: DeliveryKind
    message_id: str
    generation_id: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    retried: int = 0


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one attempt got back: a status (``None`` = no answer) and the last response."""

    status: int | None
    retry_after_s: float | None = None
    body: bytes = b""
    non_retryable: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class LocalQueue:
    """``QueuePort`` for development and tests; same signatures, retries and callback as QStash."""

    def __init__(
        self,
        *,
        worker_url: str,
        signing_key: str,
        retries: int = 3,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 2.0,
        timeout_s: float = 60,
        transport: httpx.BaseTransport | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        dedup_window_s: float = DEDUP_WINDOW_S,
    ) -> None:
        if not worker_url or not signing_key:
            raise ValueError("worker_url and signing_key are required")
        if retries < 0 or concurrency < 1:
            raise ValueError("retries must be >= 0 and concurrency >= 1")
        base = worker_url.rstrip("/")
        self._generate_url = base + WORKER_GENERATE_PATH
        self._failed_url = base + WORKER_FAILED_PATH
        self._signing_key = signing_key
        self._retries = retries
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._timeout_s = timeout_s
        self._transport = transport
        self._concurrency = concurrency
        self._dedup_window_s = dedup_window_s

        # One condition guards all mutable state below; workers wait on it for due work.
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None
        self._recent: dict[str, tuple[str, float]] = {}  # generation_id -> (message_id, until)

    # -- public API ---------------------------------------------------------------------

    def enqueue(self, job: JobPayload) -> str:
        """Queue ``job`` for background delivery and return its message id at once."""
        now = time.monotonic()
        with self._cond:
            if self._closed:
                raise ServiceUnavailable("The local queue is closed.")
            duplicate = self._duplicate_of(job.generation_id, now)
            if duplicate is not None:
                logger.info(
                    "local queue deduplicated generation_id=%s message_id=%s",
                    job.generation_id,
                    duplicate,
                )
                return duplicate
            message_id = f"msg_local_{uuid.uuid4().hex}"
            self._recent[job.generation_id] = (message_id, now + self._dedup_window_s)
            self._push_locked(self._job_delivery(job, message_id), now)
            self._start_locked()
        logger.info(
            "local queue enqueued generation_id=%s message_id=%s", job.generation_id, message_id
        )
        return message_id

    def start(self) -> None:
        """Start the delivery threads now (``enqueue`` does it lazily otherwise)."""
        with self._cond:
            if self._closed:
                raise ServiceUnavailable("The local queue is closed.")
            self._start_locked()

    def join_idle(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds until nothing is queued, waiting or in flight.

        Returns whether the queue went idle. Meant for tests and the demo.
        """
        with self._cond:
            return self._cond.wait_for(lambda: not self._heap and self._in_flight == 0, timeout)

    def close(self) -> None:
        """Stop the threads and drop undelivered messages. Enqueueing afterwards fails."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        if dropped:
            logger.warning("local queue closed with %d undelivered messages", dropped)
        deadline = time.monotonic() + CLOSE_JOIN_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> LocalQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scheduling (callers hold self._cond) ------------------------------------------

    def _duplicate_of(self, generation_id: str, now: float) -> str | None:
        for key in [k for k, (_, until) in self._recent.items() if until <= now]:
            del self._recent[key]
        hit = self._recent.get(generation_id)
        return hit[0] if hit else None

    def _push_locked(self, delivery: _Delivery, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), delivery))
        self._cond.notify()

    def _start_locked(self) -> None:
        if self._threads:
            return
        self._client = httpx.Client(
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout_s, connect=min(5.0, self._timeout_s)),
            # The worker URL is local or explicit; never route it through an env proxy.
            trust_env=False,
        )
        for index in range(self._concurrency):
            thread = threading.Thread(
                target=self._run, name=f"reel-local-queue-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _schedule(self, delivery: _Delivery, delay_s: float) -> None:
        with self._cond:
            if self._closed:
                logger.warning("local queue closed; dropped message_id=%s", delivery.message_id)
                return
            self._push_locked(delivery, time.monotonic() + delay_s)

    def _next_due(self) -> _Delivery | None:
        """Block until a delivery is due (and count it in flight) or the queue closes."""
        with self._cond:
            while not self._closed:
                wait_s: float | None = None
                if self._heap:
                    wait_s = self._heap[0][0] - time.monotonic()
                    if wait_s <= 0:
                        _, _, delivery = heapq.heappop(self._heap)
                        self._in_flight += 1
                        return delivery
                self._cond.wait(wait_s)
            return None

    # -- delivery (worker threads) -----------------------------------------------------

    def _run(self) -> None:
        while (delivery := self._next_due()) is not None:
            try:
                self._attempt(delivery)
            except Exception:
                # Last-resort guard: a bug must cost one message, never the delivery thread.
                logger.exception("local queue dropped message_id=%s", delivery.message_id)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, delivery: _Delivery) -> None:
        outcome = self._post(delivery)
        attempt = delivery.retried + 1
        if outcome.ok:
            logger.info(
                "local queue delivered kind=%s message_id=%s attempt=%d status=%s",
                delivery.kind,
                delivery.message_id,
                attempt,
                outcome.status,
            )
            return
        if delivery.retried < self._retries and not outcome.non_retryable:
            delay_s = retry_delay_s(
                delivery.retried,
                base_s=self._backoff_base_s,
                cap_s=self._backoff_cap_s,
                retry_after_s=outcome.retry_after_s,
            )
            logger.warning(
                "local queue attempt failed kind=%s message_id=%s attempt=%d status=%s "
                "retry_in_s=%.2f",
                delivery.kind,
                delivery.message_id,
                attempt,
                outcome.status,
                delay_s,
            )
            self._schedule(replace(delivery, retried=delivery.retried + 1), delay_s)
            return
        logger.error(
            "local queue gave up kind=%s message_id=%s generation_id=%s attempts=%d status=%s",
            delivery.kind,
            delivery.message_id,
            delivery.generation_id,
            attempt,
            outcome.status,
        )
        if delivery.kind == "job":
            self._schedule(self._failure_delivery(delivery, outcome), 0.0)

    def _post(self, delivery: _Delivery) -> _Outcome:
        client = self._client
        if client is None:  # cannot happen: threads start after the client exists
            return _Outcome(status=None)
        headers = {
            **delivery.headers,
            "Content-Type": "application/json",
            "Upstash-Message-Id": delivery.message_id,
            "Upstash-Retried": str(delivery.retried),
            # Re-signed per attempt, as QStash does, so a late retry is never expired.
            "Upstash-Signature": sign_qstash(delivery.body, delivery.url, self._signing_key),
        }
        try:
            response = client.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning(
                "local queue no answer kind=%s message_id=%s attempt=%d error=%s",
                delivery.kind,
                delivery.message_id,
                delivery.retried + 1,
                type(exc).__name__,
            )
            return _Outcome(status=None)
        return _Outcome(
            status=response.status_code,
            retry_after_s=parse_retry_after_s(response.headers.get("Retry-After")),
            body=response.content,
            non_retryable=is_non_retryable(response.status_code, response.headers),
        )

    # -- message shapes ----------------------------------------------------------------

    def _job_delivery(self, job: JobPayload, message_id: str) -> _Delivery:
        return _Delivery(
            kind="job",
            message_id=message_id,
            generation_id=job.generation_id,
            url=self._generate_url,
            body=job.to_body(),
            # QStash forwards Upstash-Forward-X-Request-Id as plain X-Request-Id.
            headers={"X-Request-Id": job.request_id},
        )

    def _failure_delivery(self, failed: _Delivery, outcome: _Outcome) -> _Delivery:
        """The QStash-shaped failure callback for a job whose last retry failed."""
        now_ms = str(int(time.time() * 1000))
        source_header = {
            "Content-Type": ["application/json"],
            **{name: [value] for name, value in failed.headers.items()},
        }
        payload: dict[str, Any] = {
            "status": outcome.status or 0,
            "body": base64.b64encode(outcome.body).decode("ascii"),
            "retried": failed.retried,
            "maxRetries": self._retries,
            "dlqId": f"dlq_local_{uuid.uuid4().hex}",
            "sourceMessageId": failed.message_id,
            "url": failed.url,
            "method": "POST",
            "sourceHeader": source_header,
            "sourceBody": base64.b64encode(failed.body).decode("ascii"),
            "notBefore": now_ms,
            "createdAt": now_ms,
        }
        return _Delivery(
            kind="failure_callback",
            message_id=f"msg_local_{uuid.uuid4().hex}",
            generation_id=failed.generation_id,
            url=self._failed_url,
            body=json.dumps(payload, separators=(",", ":")).encode(),
        )
