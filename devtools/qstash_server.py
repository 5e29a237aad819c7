"""A local QStash: the publish and schedules API, delivering over HTTP with signatures.

No QStash server can be installed here (REFERENCE.md), so the rehearsal and the tests
point the real SDK at this one (``QStash(token, base_url=…)`` / ``QSTASH_URL``). It
speaks the parts of QStash's API the product uses:

- ``POST /v2/publish/<destination URL>`` with ``Authorization: Bearer <token>``; headers
  ``Upstash-Retries`` (default 3), ``Upstash-Failure-Callback``,
  ``Upstash-Deduplication-Id`` (10-minute window: the first message id comes back with
  ``deduplicated: true`` and nothing is delivered again), ``Upstash-Timeout``,
  ``Upstash-Delay``, ``Upstash-Method`` and ``Upstash-Forward-<name>`` (forwarded as
  ``<name>``). Answers ``{"messageId": …, "deduplicated": …}``.
- ``POST /v2/schedules/<destination URL>`` with ``Upstash-Cron`` (five fields: ``*``,
  ``*/n``, ``a``, ``a-b``, ``a-b/n`` and lists) and the publish headers; answers
  ``{"scheduleId": …}``. ``GET /v2/schedules``, ``DELETE /v2/schedules/<id>``.

Each delivery attempt is a fresh HTTP request carrying ``Upstash-Signature``: an HS256
JWT minted here (not by ``shared.queue``, so a bug there cannot hide by agreeing with
itself) with ``iss`` "Upstash", ``sub`` the destination URL, a 5-minute ``exp``,
``nbf``/``iat``, a fresh ``jti`` per attempt and ``body`` the base64url SHA-256 of the
body; ``Upstash-Message-Id`` and ``Upstash-Retried`` (0 on the first attempt). A non-2xx
answer or no answer within the timeout is retried after QStash's backoff
``min(86400, e^(2.5 n))`` seconds times ``backoff_scale`` (a ``Retry-After`` answer
overrides it); after the last retry the failure callback gets QStash's JSON (``status``,
``body``, ``retried``, ``maxRetries``, ``url``, ``sourceMessageId``, base64
``sourceBody``, …), itself signed for the callback URL and retried the same way.

Why this module stays whole (over 500 lines): it is one stand-in for one external service,
whose parts (the publish and schedules API, the delivery loop with its retries and
failure callback, the signing, the cron schedules) answer to one document, QStash's, and
share one message store and one clock; the tests and the rehearsal use it as a unit. It
is development code that no deployment carries.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import httpx
import jwt

from devtools.local_queue import is_non_retryable

__all__ = [
    "Attempt",
    "CronSpec",
    "Message",
    "QStashServer",
    "default_backoff_s",
]

DEDUPLICATION_WINDOW_S = 600.0
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT_S = 300.0
SIGNATURE_TTL_S = 300
PUBLISH_PREFIX = "/v2/publish/"
SCHEDULES_PREFIX = "/v2/schedules"


def default_backoff_s(retried: int) -> float:
    """QStash's default delay before retry number ``retried`` (1, 2, …)."""
    return min(86400.0, math.exp(2.5 * retried))


def _body_claim(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")


def _duration_s(value: str | None, default: float) -> float:
    """``Upstash-Timeout`` / ``Upstash-Delay``: ``"30s"``, ``"2m"``, ``"1h"`` or seconds."""
    if not value:
        return default
    value = value.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units:
        return float(value[:-1]) * units[value[-1]]
    return float(value)


# ---- cron --------------------------------------------------------------------------------


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            start, end = low, high
        elif "-" in span:
            a, b = span.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = int(span)
            end = high if step_text else start
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"cron field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSpec:
    """A five-field cron expression (minute hour day-of-month month day-of-week), UTC."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, text: str) -> CronSpec:
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"cron {text!r} must have five fields")
        minute, hour, day, month, weekday = parts
        weekdays = {d % 7 for d in _cron_field(weekday, 0, 7)}
        return cls(
            _cron_field(minute, 0, 59),
            _cron_field(hour, 0, 23),
            _cron_field(day, 1, 31),
            _cron_field(month, 1, 12),
            frozenset(weekdays),
        )

    def matches(self, at: datetime) -> bool:
        return (
            at.minute in self.minutes
            and at.hour in self.hours
            and at.day in self.days
            and at.month in self.months
            and (at.isoweekday() % 7) in self.weekdays
        )


# ---- records -----------------------------------------------------------------------------


@dataclass
class Message:
    """One published message (or failure callback) and its delivery state."""

    id: str
    url: str
    body: bytes
    method: str
    headers: dict[str, str]  # forwarded to the destination
    retries: int
    timeout_s: float
    failure_callback: str | None
    schedule_id: str | None = None
    callback_of: str | None = None  # the message whose failure this callback reports
    retried: int = 0
    state: str = "pending"  # pending, delivered, failed
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as the destination saw it."""

    message_id: str
    url: str
    retried: int
    status: int | None  # None: no answer (connection refused, timeout)
    jti: str
    started: float  # time.monotonic()
    elapsed_s: float


@dataclass
class _Schedule:
    id: str
    destination: str
    cron: str
    spec: CronSpec
    body: bytes
    headers: dict[str, str]  # the publish headers, replayed on every tick
    created_at: float = field(default_factory=time.time)


# ---- the server --------------------------------------------------------------------------


class QStashServer:
    """``with QStashServer(token=…, current_signing_key=…, next_signing_key=…) as q: q.url``."""

    def __init__(
        self,
        *,
        token: str,
        current_signing_key: str,
        next_signing_key: str,
        backoff: Callable[[int], float] = default_backoff_s,
        backoff_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrent_deliveries: int = 16,
    ) -> None:
        self.token = token
        self.current_signing_key = current_signing_key
        self.next_signing_key = next_signing_key
        self._backoff = backoff
        self._backoff_scale = backoff_scale
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, str]] = []  # (monotonic due time, seq, message id)
        self._seq = itertools.count()
        self.messages: dict[str, Message] = {}
        self.attempts: list[Attempt] = []
        self._dedup: dict[str, tuple[str, float]] = {}
        self._schedules: dict[str, _Schedule] = {}
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_concurrent_deliveries, thread_name_prefix="qstash")
        self._http = httpx.Client(follow_redirects=False)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._dispatch_loop, name="qstash-dispatch", daemon=True),
            threading.Thread(target=self._schedule_loop, name="qstash-cron", daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> QStashServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=5)
        self._http.close()

    def __enter__(self) -> QStashServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- what tests and the rehearsal read ---------------------------------------------

    def attempts_to(self, url: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.url == url]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Wait until ``predicate()`` (called with the lock held) is true."""
        with self._lock:
            return self._lock.wait_for(predicate, timeout_s)

    def settled(self) -> bool:
        """No message is waiting for a delivery or a retry."""
        with self._lock:
            return all(m.state != "pending" for m in self.messages.values())

    # ---- publish -----------------------------------------------------------------------

    def publish(self, destination: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        """What ``POST /v2/publish/<destination>`` does (``headers`` as sent, any case)."""
        h = {k.lower(): v for k, v in headers.items()}
        if not destination.startswith(("http://", "https://")):
            raise ValueError("destination must be an http(s) URL")
        now = time.monotonic()
        dedup_id = h.get("upstash-deduplication-id")
        with self._lock:
            if dedup_id:
                seen = self._dedup.get(dedup_id)
                if seen and now - seen[1] < DEDUPLICATION_WINDOW_S:
                    return {"messageId": seen[0], "deduplicated": True}
            message = Message(
                id=f"msg_{secrets.token_hex(12)}",
                url=destination,
                body=body,
                method=h.get("upstash-method", "POST").upper(),
                headers=_forwarded(h),
                retries=int(h.get("upstash-retries", DEFAULT_RETRIES)),
                timeout_s=_duration_s(h.get("upstash-timeout"), DEFAULT_TIMEOUT_S),
                failure_callback=h.get("upstash-failure-callback"),
                schedule_id=h.get("upstash-schedule-id"),
            )
            if dedup_id:
                self._dedup[dedup_id] = (message.id, now)
            self.messages[message.id] = message
            self._push(now + _duration_s(h.get("upstash-delay"), 0.0), message.id)
        return {"messageId": message.id, "deduplicated": False}

    def _push(self, due: float, message_id: str) -> None:
        heapq.heappush(self._due, (due, next(self._seq), message_id))
        self._lock.notify_all()

    # ---- delivery ----------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                while not self._stopping.is_set():
                    wait = self._due[0][0] - time.monotonic() if self._due else 0.5
                    if self._due and wait <= 0:
                        break
                    self._lock.wait(min(max(wait, 0.0), 0.5))
                if self._stopping.is_set():
                    return
                _, _, message_id = heapq.heappop(self._due)
                message = self.messages[message_id]
            try:
                self._pool.submit(self._attempt, message)
            except RuntimeError:  # the pool shut down: the server is stopping
                return

    def _attempt(self, message: Message) -> None:
        jti = f"jwt_{secrets.token_hex(16)}"
        headers = {
            **message.headers,
            "Upstash-Signature": self._sign(message.body, message.url, jti),
            "Upstash-Message-Id": message.id,
            "Upstash-Retried": str(message.retried),
            "User-Agent": "Upstash-QStash",
        }
        if message.schedule_id:
            headers["Upstash-Schedule-Id"] = message.schedule_id
        started = time.monotonic()
        status: int | None = None
        answer = b""
        retry_after: str | None = None
        non_retryable = False
        try:
            response = self._http.request(
                message.method,
                message.url,
                content=message.body,
                headers=headers,
                timeout=message.timeout_s,
            )
            status, answer = response.status_code, response.content
            retry_after = response.headers.get("Retry-After")
            non_retryable = is_non_retryable(status, response.headers)
        except httpx.HTTPError:
            pass
        with self._lock:
            self.attempts.append(
                Attempt(
                    message.id,
                    message.url,
                    message.retried,
                    status,
                    jti,
                    started,
                    time.monotonic() - started,
                )
            )
            if status is not None and 200 <= status < 300:
                message.state = "delivered"
            elif message.retried < message.retries and not non_retryable:
                message.retried += 1
                delay = self._retry_delay(message.retried, retry_after)
                self._push(time.monotonic() + delay, message.id)
            else:
                message.state = "failed"
                if message.failure_callback:
                    self._queue_failure_callback(message, status, answer)
            self._lock.notify_all()

    def _retry_delay(self, retried: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass
        return self._backoff(retried) * self._backoff_scale

    def _queue_failure_callback(self, source: Message, status: int | None, answer: bytes) -> None:
        """Caller holds the lock."""
        assert source.failure_callback is not None
        now_ms = int(time.time() * 1000)
        payload = {
            "status": status or 0,
            "header": {},
            "body": base64.b64encode(answer).decode(),
            "retried": source.retried,
            "maxRetries": source.retries,
            "dlqId": f"dlq_{secrets.token_hex(8)}",
            "sourceMessageId": source.id,
            "topicName": "",
            "endpointName": "",
            "url": source.url,
            "method": source.method,
            "sourceHeader": {k: [v] for k, v in source.headers.items()},
            "sourceBody": base64.b64encode(source.body).decode(),
            "notBefore": now_ms,
            "createdAt": int(source.created_at * 1000),
            "scheduleId": source.schedule_id or "",
            "callerIP": "127.0.0.1",
        }
        callback = Message(
            id=f"msg_{secrets.token_hex(12)}",
            url=source.failure_callback,
            body=json.dumps(payload, separators=(",", ":")).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
            retries=source.retries,
            timeout_s=source.timeout_s,
            failure_callback=None,
            callback_of=source.id,
        )
        self.messages[callback.id] = callback
        self._push(time.monotonic(), callback.id)

    def sign(self, body: bytes, url: str) -> str:
        """An ``Upstash-Signature`` for ``body`` sent to ``url`` (a fresh ``jti``)."""
        return self._sign(body, url, f"jwt_{secrets.token_hex(16)}")

    def _sign(self, body: bytes, url: str, jti: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "Upstash",
            "sub": url,
            "exp": now + SIGNATURE_TTL_S,
            "nbf": now,
            "iat": now,
            "jti": jti,
            "body": _body_claim(body),
        }
        return jwt.encode(claims, self.current_signing_key, algorithm="HS256")

    # ---- schedules ---------------------------------------------------------------------

    def create_schedule(self, destination: str, body: bytes, headers: Mapping[str, str]) -> str:
        h = {k.lower(): v for k, v in headers.items()}
        cron = h.get("upstash-cron", "")
        spec = CronSpec.parse(cron)
        schedule = _Schedule(
            id=h.get("upstash-schedule-id") or f"scd_{secrets.token_hex(10)}",
            destination=destination,
            cron=cron,
            spec=spec,
            body=body,
            headers={k: v for k, v in h.items() if k not in ("upstash-cron", "authorization")},
        )
        with self._lock:
            self._schedules[schedule.id] = schedule
        return schedule.id

    def tick(self, at: datetime) -> list[str]:
        """Publish every schedule whose cron matches the minute ``at`` (UTC); message ids."""
        with self._lock:
            due = [s for s in self._schedules.values() if s.spec.matches(at)]
        return [
            self.publish(s.destination, s.body, {**s.headers, "upstash-schedule-id": s.id})[
                "messageId"
            ]
            for s in due
        ]

    def _schedule_loop(self) -> None:
        last: datetime | None = None
        while not self._stopping.wait(0.5):
            minute = datetime.now(UTC).replace(second=0, microsecond=0)
            if last is not None and minute > last:
                at = last + timedelta(minutes=1)
                while at <= minute:  # every minute passed, even if the loop was late
                    self.tick(at)
                    at += timedelta(minutes=1)
            last = minute

    # ---- HTTP --------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {outer.token}":
                    return True
                self._answer(401, {"error": "Unauthorized"})
                return False

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if not self._authorised():
                    return
                headers = dict(self.headers.items())
                try:
                    if self.path.startswith(PUBLISH_PREFIX):
                        destination = unquote(self.path[len(PUBLISH_PREFIX) :])
                        self._answer(200, outer.publish(destination, body, headers))
                    elif self.path.startswith(SCHEDULES_PREFIX + "/"):
                        destination = unquote(self.path[len(SCHEDULES_PREFIX) + 1 :])
                        schedule_id = outer.create_schedule(destination, body, headers)
                        self._answer(200, {"scheduleId": schedule_id})
                    else:
                        self._answer(404, {"error": "not found"})
                except ValueError as exc:
                    self._answer(400, {"error": str(exc)})

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.rstrip("/") != SCHEDULES_PREFIX:
                    self._answer(404, {"error": "not found"})
                    return
                with outer._lock:
                    schedules = [
                        {
                            "scheduleId": s.id,
                            "destination": s.destination,
                            "cron": s.cron,
                            "createdAt": int(s.created_at * 1000),
                            "method": s.headers.get("upstash-method", "POST"),
                            "retries": int(s.headers.get("upstash-retries", DEFAULT_RETRIES)),
                            "body": s.body.decode(errors="replace"),
                        }
                        for s in outer._schedules.values()
                    ]
                self._answer(200, schedules)

            def do_DELETE(self) -> None:
                if not self._authorised():
                    return
                schedule_id = self.path[len(SCHEDULES_PREFIX) + 1 :]
                with outer._lock:
                    found = outer._schedules.pop(schedule_id, None)
                self._answer(200 if found else 404, {} if found else {"error": "not found"})

        return Handler


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    """``Upstash-Forward-<Name>`` headers (lower-cased keys) as ``<Name>``, plus the type."""
    out: dict[str, str] = {}
    prefix = "upstash-forward-"
    for name, value in headers.items():
        if name.startswith(prefix):
            out["-".join(p.capitalize() for p in name[len(prefix) :].split("-"))] = value
    if "content-type" in headers:
        out["Content-Type"] = headers["content-type"]
    return out
