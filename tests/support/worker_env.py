"""The worker under test: our real HTTP server and container, MiniMax replaced by the fake.

``WorkerEnv`` wires a ``Container`` to a ``FakeMiniMax`` (a real local server speaking
MiniMax's wire format) and a ``CapturingQueue`` standing in for QStash's publish endpoint,
so a test can create a generation over HTTP, then deliver the job itself — signed like
QStash — as often, as late and as concurrently as it wants. Postgres and Redis are the
run's real ones (shared pools with the session container); ids are random per test.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from devtools.compose import dev_container
from devtools.fake_minimax import FakeMiniMax
from shared.ai import LLMPort, MiniMaxClient
from shared.bootstrap import Container
from shared.clock import Clock, utcnow
from shared.config import Settings, load_settings
from shared.queue import (
    WORKER_FAILED_PATH,
    WORKER_GENERATE_PATH,
    WORKER_SWEEP_PATH,
    JobPayload,
    QueuePort,
    sign_qstash,
)
from tests.support.clock import FixedClock
from tests.support.usage_truth import assert_usage_matches_postgres

__all__ = [
    "MINIMAX_KEY",
    "SIGNING_CURRENT",
    "SIGNING_NEXT",
    "CapturingQueue",
    "ShiftedClock",
    "WorkerEnv",
    "failure_callback_body",
    "fake_minimax_container",
    "worker_settings",
]

# Long, distinctive secrets: 64 bytes keep PyJWT's short-key warning (an error here)
# away, and being unique lets the redaction test search every log line for them.
SIGNING_CURRENT = "sig_cur_" + secrets.token_hex(28)
SIGNING_NEXT = "sig_nxt_" + secrets.token_hex(28)
MINIMAX_KEY = "mm-key-" + secrets.token_hex(16)
MODEL = "MiniMax-M2.5"
_LEDGER_FIELDS = (
    "prompt_tokens", "completion_tokens", "cost_micro_usd", "billable", "model", "plan"
)  # fmt: skip


class CapturingQueue:
    """``QueuePort`` that keeps each job instead of delivering it (QStash's publish side)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, JobPayload] = {}

    def enqueue(self, job: JobPayload) -> str:
        with self._lock:
            self.jobs[job.generation_id] = job
        return f"msg_capture_{job.generation_id}"


class ShiftedClock:
    """System time moved by ``delta``: a worker or sweeper running later than now."""

    def __init__(self, delta: timedelta) -> None:
        self.delta = delta

    def now(self) -> datetime:
        return utcnow() + self.delta


def worker_settings(base_env: Mapping[str, str], **env: str) -> Settings:
    """The run's settings with our own QStash signing keys (and any ``env`` overrides)."""
    return load_settings(
        {
            **base_env,
            "QSTASH_CURRENT_SIGNING_KEY": SIGNING_CURRENT,
            "QSTASH_NEXT_SIGNING_KEY": SIGNING_NEXT,
            **env,
        }
    )


@contextmanager
def fake_minimax_container(
    database_url: str, redis_url: str, key_prefix: str, fake_url: str, runtime_s: int
) -> Iterator[Container]:
    """A development container whose worker calls the fake MiniMax at ``fake_url`` and
    whose queue keeps its jobs (``CapturingQueue``), jobs timing out after ``runtime_s``."""
    settings = worker_settings(
        {
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": key_prefix,
            "QUEUE_BACKEND": "local",
            "AI_PROVIDER": "offline",
        },
        MAX_JOB_RUNTIME_S=str(runtime_s),
    )
    llm = MiniMaxClient(MINIMAX_KEY, base_url=fake_url, model=MODEL, max_tokens=256)
    c = dev_container(settings, llm=llm, queue=CapturingQueue())
    try:
        yield c
    finally:
        llm.close()
        c.db.close()


def failure_callback_body(job: JobPayload, *, status: int = 503, retried: int = 3) -> bytes:
    """The JSON QStash posts to the failure callback after the job's last failed retry."""
    now_ms = str(int(time.time() * 1000))
    return json.dumps(
        {
            "status": status,
            "body": base64.b64encode(b'{"error":"busy"}').decode(),
            "retried": retried,
            "maxRetries": retried,
            "dlqId": f"dlq_{secrets.token_hex(8)}",
            "sourceMessageId": f"msg_{secrets.token_hex(8)}",
            "url": "http://worker.example/worker/generate",
            "method": "POST",
            "sourceHeader": {"Content-Type": ["application/json"]},
            "sourceBody": base64.b64encode(job.to_body()).decode(),
            "notBefore": now_ms,
            "createdAt": now_ms,
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class WorkerEnv:
    """One test's container over the fake MiniMax, plus helpers to drive the worker."""

    settings: Settings
    container: Container
    fake: FakeMiniMax
    http: httpx.Client
    queue: QueuePort
    llm: MiniMaxClient

    @classmethod
    def build(
        cls,
        base_env: Mapping[str, str],
        session: Container,
        http: httpx.Client,
        fake: FakeMiniMax,
        *,
        queue: QueuePort | None = None,
        clock: Clock | None = None,
        max_job_runtime_s: int = 30,
        max_tokens: int = 512,
        events_max_open_s: int = 25,
        cors_allowed_origins: str | None = None,
    ) -> WorkerEnv:
        cors = {"CORS_ALLOWED_ORIGINS": cors_allowed_origins} if cors_allowed_origins else {}
        settings = worker_settings(
            base_env,
            MAX_JOB_RUNTIME_S=str(max_job_runtime_s),
            EVENTS_MAX_OPEN_S=str(events_max_open_s),
            **cors,
        )
        llm = MiniMaxClient(
            MINIMAX_KEY,
            base_url=fake.url,
            model=MODEL,
            max_tokens=max_tokens,
            backoff_base_s=0.01,
            backoff_cap_s=0.05,
            min_attempt_s=0.2,
        )
        queue = queue if queue is not None else CapturingQueue()
        # Share the session's pools: a fresh Postgres pool per test would only cost time.
        # Pinned unless the test brings its own: usage counts then name one month and hour
        # however long the test runs (a ShiftedClock container models a later worker).
        container = dev_container(
            settings,
            clock=clock or FixedClock(),
            llm=llm,
            queue=queue,
            db=session.db,
            redis=session.redis,
        )
        return cls(settings, container, fake, http, queue, llm)

    def with_fallback(
        self, secondary: LLMPort, *, time_offset_ms: Callable[[], int], **settings: Any
    ) -> Container:
        """A container on the same pools, clock and queue whose provider client is the
        fake MiniMax behind its circuit breaker, falling back to ``secondary`` — wired by
        ``Container.with_fallback`` like production (``settings``: field changes, e.g.
        the circuit's numbers; ``time_offset_ms``: the breaker's script time)."""
        changed = self.settings.replace(**settings)
        shared = {"db": self.container.db, "redis": self.container.redis}
        llm = dev_container(changed, **shared).with_fallback(
            self.llm, secondary, time_offset_ms=time_offset_ms
        )
        return dev_container(
            changed, clock=self.container.clock, llm=llm, queue=self.queue, **shared
        )

    def with_clock(self, clock: Clock) -> Container:
        """A second container on the same pools and fake, whose time is ``clock``'s."""
        return dev_container(
            self.settings,
            clock=clock,
            llm=self.llm,
            queue=self.queue,
            db=self.container.db,
            redis=self.container.redis,
        )

    # ---- create and deliver ---------------------------------------------------------

    def create(self, headers: Mapping[str, str], *, variants: int = 1, **extra: str) -> str:
        """POST /v1/create; returns the generation id (its job is captured, not delivered)."""
        body = {"brief": "3 reasons to drink water", "platform": "tiktok", "variants": variants}
        r = self.http.post("/v1/create", json=body, headers={**headers, **extra})
        assert r.status_code == 202, r.text
        generation_id: str = r.json()["generation_id"]
        return generation_id

    def job(self, generation_id: str) -> JobPayload:
        assert isinstance(self.queue, CapturingQueue)
        return self.queue.jobs[generation_id]

    def url(self, path: str) -> str:
        return self.settings.effective_worker_url + path

    def signed_post(
        self,
        path: str,
        body: bytes,
        *,
        key: str = SIGNING_CURRENT,
        signed_url: str | None = None,
        signed_body: bytes | None = None,
        now: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST ``body`` to ``path`` with an Upstash-Signature minted like QStash does."""
        signature = sign_qstash(
            body if signed_body is None else signed_body,
            signed_url or self.url(path),
            key,
            now=now,
        )
        return self.http.post(
            path,
            content=body,
            headers={
                "Content-Type": "application/json",
                "Upstash-Signature": signature,
                "Upstash-Message-Id": f"msg_{secrets.token_hex(6)}",
                "Upstash-Retried": "0",
                **(headers or {}),
            },
        )

    def deliver(self, job: JobPayload, **kw: Any) -> httpx.Response:
        """One QStash delivery of ``job`` to /worker/generate."""
        return self.signed_post(
            WORKER_GENERATE_PATH, job.to_body(), headers={"X-Request-Id": job.request_id}, **kw
        )

    def failure_callback(self, job: JobPayload) -> httpx.Response:
        return self.signed_post(WORKER_FAILED_PATH, failure_callback_body(job))

    def sweep(self) -> httpx.Response:
        return self.signed_post(WORKER_SWEEP_PATH, b"{}")

    # ---- observe -------------------------------------------------------------------

    def sql(self, query: str, **params: Any) -> list[list[Any]]:
        """Run ``query`` in its own committed transaction (seeding crash states)."""
        with self.container.db.uow() as uow:
            rows = uow._session.run(query, **params)
            uow.commit()
        return rows

    def generation(self, generation_id: str) -> dict[str, Any]:
        rows = self.sql(
            "SELECT status, error_code, attempts, started_at FROM generations "
            "WHERE id = CAST(:g AS uuid)",
            g=generation_id,
        )
        status, code, attempts, started_at = rows[0]
        return {"status": status, "code": code, "attempts": attempts, "started_at": started_at}

    def ledger(self, generation_id: str) -> list[dict[str, Any]]:
        rows = self.sql(
            f"SELECT {', '.join(_LEDGER_FIELDS)} FROM usage_ledger "
            "WHERE generation_id = CAST(:g AS uuid)",
            g=generation_id,
        )
        return [dict(zip(_LEDGER_FIELDS, row, strict=True)) for row in rows]

    def variant_count(self, generation_id: str) -> int:
        rows = self.sql(
            "SELECT count(*) FROM variants WHERE generation_id = CAST(:g AS uuid)",
            g=generation_id,
        )
        return int(rows[0][0])

    def usage(self, headers: Mapping[str, str]) -> tuple[int, int]:
        """(monthly generations used, concurrency in use) as GET /v1/usage reports them."""
        r = self.http.get("/v1/usage", headers=dict(headers))
        assert r.status_code == 200, r.text
        body = r.json()
        return int(body["generations"]["used"]), int(body["concurrency"]["in_use"])

    def assert_books(self, headers: Mapping[str, str], user_id: str) -> dict[str, Any]:
        """The user's ``/v1/usage`` equals what Postgres implies (after a fault test)."""
        r = self.http.get("/v1/usage", headers=dict(headers))
        assert self.settings.database_url
        return assert_usage_matches_postgres(r, self.settings.database_url, user_id)

    def backdate(self, generation_id: str, *, running: bool, age_s: int) -> None:
        """Seed a crash: the generation created (and, if ``running``, claimed) long ago."""
        if running:
            self.sql(
                "UPDATE generations SET status = 'running', attempts = attempts + 1, "
                "started_at = now() - make_interval(secs => CAST(:a AS int)), "
                "created_at = now() - make_interval(secs => CAST(:a AS int) + 1) "
                "WHERE id = CAST(:g AS uuid) AND status = 'queued'",
                g=generation_id,
                a=age_s,
            )
        else:
            self.sql(
                "UPDATE generations "
                "SET created_at = now() - make_interval(secs => CAST(:a AS int)) "
                "WHERE id = CAST(:g AS uuid)",
                g=generation_id,
                a=age_s,
            )

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            time.sleep(0.02)
