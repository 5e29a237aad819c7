"""Helpers shared by the ``test_api_*`` files: the SPEC error-shape check, fake queues,
derived containers, Postgres seeding (through the repositories) and read-only SQL probes.

Only the network edge is faked: a queue that records (or refuses, or blocks on) jobs, a
database whose transaction fails. Everything else is the real container's.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx

from devtools.compose import dev_container
from shared.api.auth import authenticator_of
from shared.bootstrap import Container
from shared.clock import utcnow
from shared.config import load_settings
from shared.db import Database, GenerationKind, Platform, UnitOfWork
from shared.db.connection import connect
from shared.errors import ServiceUnavailable
from shared.queue.base import QueuePort
from shared.queue.jobs import JobPayload
from shared.redis.keys import hour_label, month_label

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
CREATE = {"brief": "3 reasons to drink water, upbeat", "platform": "tiktok"}


def raw(hook: str, script: str = "A short script.", caption: str = "A caption") -> dict[str, Any]:
    """Raw variant content for ``POST /v1/library/assets``."""
    return {"hook": hook, "script": script, "caption": caption, "hashtags": ["#water"]}


def assert_security_headers(r: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, dict(r.headers))
    assert r.headers.get("X-Frame-Options") == "DENY"
    assert r.headers.get("X-Request-Id")


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The SPEC §3 error body, exactly; X-Request-Id equals its request_id. The error."""
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"], body
    err: dict[str, Any] = body["error"]
    assert set(err) == {"code", "message", "request_id", "details"}, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str), err
    assert err["message"], err
    assert isinstance(err["details"], dict), err
    assert r.headers["X-Request-Id"] == err["request_id"]
    assert "Traceback" not in r.text
    assert_security_headers(r)
    if status in (429, 503):
        assert int(r.headers["Retry-After"]) >= 1
    return err


def assert_limit_details(err: dict[str, Any], *, limit: int, used: int) -> datetime:
    """``details`` of a 429 with limit/used/resets_at; the parsed ``resets_at``."""
    details = err["details"]
    assert details["limit"] == limit, details
    assert details["used"] == used, details
    resets_at = datetime.fromisoformat(details["resets_at"].replace("Z", "+00:00"))
    assert resets_at > utcnow()
    return resets_at


def tamper(cursor: str) -> str:
    """``cursor`` with one character in its middle changed (the last base64 character may
    carry only padding bits, so editing it need not change the decoded bytes)."""
    i = len(cursor) // 2
    return cursor[:i] + ("B" if cursor[i] == "A" else "A") + cursor[i + 1 :]


# ---- queues ----------------------------------------------------------------------------


class RecordingQueue:
    """A ``QueuePort`` that keeps jobs instead of delivering them (generations stay queued,
    leases stay held). ``deliver_to`` hands them to a real queue afterwards."""

    def __init__(self) -> None:
        self.jobs: list[JobPayload] = []
        self._lock = threading.Lock()

    def enqueue(self, job: JobPayload) -> str:
        with self._lock:
            self.jobs.append(job)
        return f"rec-{job.generation_id}"

    def deliver_to(self, queue: QueuePort) -> None:
        with self._lock:
            jobs, self.jobs = self.jobs, []
        for job in jobs:
            queue.enqueue(job)


class FailingQueue:
    """A ``QueuePort`` whose broker is down."""

    def __init__(self) -> None:
        self.calls = 0

    def enqueue(self, job: JobPayload) -> str:
        self.calls += 1
        raise ServiceUnavailable("The queue is unreachable; retry shortly.")


class GatedQueue(RecordingQueue):
    """Records jobs, but each ``enqueue`` first waits for ``open()`` (a request in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self._gate = threading.Event()

    def open(self) -> None:
        self._gate.set()

    def enqueue(self, job: JobPayload) -> str:
        self.entered.set()
        if not self._gate.wait(timeout=15):
            raise AssertionError("gate never opened")
        return super().enqueue(job)


# ---- databases -------------------------------------------------------------------------


class _FailingInserts:
    """``uow.generations`` whose insert fails like a connection lost mid-transaction."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def create(self, **kw: Any) -> Any:
        raise ServiceUnavailable("The database is unreachable; retry shortly.")

    create_with_draft = create

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class InsertFailingDb:
    """The real database, except that inserting a generation (with its draft, for a
    create) fails like a connection lost mid-statement."""

    def __init__(self, real: Database) -> None:
        self._real = real

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        with self._real.uow() as uow:
            uow.generations = _FailingInserts(uow.generations)  # type: ignore[assignment]
            yield uow

    @contextmanager
    def autocommit(self) -> Iterator[UnitOfWork]:
        with self._real.autocommit() as uow:
            uow.generations = _FailingInserts(uow.generations)  # type: ignore[assignment]
            yield uow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class ExplodingDb:
    """A database adapter with a bug: every call raises a plain ``RuntimeError``."""

    SECRET = "boom-secret-dsn postgresql://admin:hunter2@db"

    def uow(self) -> Any:
        raise RuntimeError(self.SECRET)

    def autocommit(self) -> Any:
        raise RuntimeError(self.SECRET)

    def ping(self) -> None:
        raise RuntimeError(self.SECRET)


# ---- containers ------------------------------------------------------------------------


def derive(
    container: Container,
    base_env: Mapping[str, str],
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Container:
    """A container sharing the session's adapters, with ``env`` settings and overrides.

    Redis/enforcer are rebuilt when ``env`` touches Redis or provider caps, the
    authenticator when it touches ``AUTH_*``; the queue, LLM and database are shared.
    """
    env = dict(env or {})
    settings = load_settings({**base_env, **env}) if env else container.settings
    shared: dict[str, Any] = {
        "db": container.db,
        "queue": container.queue,
        "llm": container.llm,
        "clock": container.clock,  # a test that pinned time keeps it in derived containers
    }
    if not any(k.startswith(("REDIS_", "PROVIDER_")) for k in env):
        shared |= {"redis": container.redis, "enforcer": container.enforcer}
    if not any(k.startswith("AUTH_") for k in env):
        shared["authenticator"] = authenticator_of(container)
    return dev_container(settings, **{**shared, **overrides})


# ---- Postgres --------------------------------------------------------------------------


def sql(database_url: str, query: str, **params: Any) -> list[list[Any]]:
    """Run one read-only probe on its own connection (assertions only)."""
    conn = connect(database_url)
    try:
        return conn.run(query, **params) or []
    finally:
        conn.close()


def count_rows(database_url: str, table: str, owner_id: str) -> int:
    assert table in ("drafts", "generations", "assets")  # a fixed list: never interpolate input
    rows = sql(database_url, f"SELECT count(*) FROM {table} WHERE owner_id = :o", o=owner_id)
    return int(rows[0][0])


def other_hour_label(now: datetime) -> str:
    """An hour of ``now``'s month that is not the current hour (seeded rows outside it)."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    candidate = first if hour_label(first) != hour_label(now) else first + timedelta(hours=1)
    return hour_label(candidate)


def seed_charged(
    container: Container,
    user_id: str,
    *,
    count: int,
    kind: GenerationKind = GenerationKind.CREATE,
    plan: str = "basic",
    hour: str | None = None,
) -> None:
    """``count`` succeeded (charged) generations of ``kind`` in the container's month,
    through the repositories, all on one draft (each finished before the next)."""
    now = container.now()
    llm = container.llm
    with container.db.uow() as uow:
        uow.users.ensure(user_id)
        draft = uow.drafts.create(
            user_id, title="seeded", brief="seeded history", platform=Platform.TIKTOK,
            tone=None, duration_seconds=30, language="en",
        )  # fmt: skip
        for _ in range(count):
            gen = uow.generations.create(
                id=uuid.uuid4(), owner_id=user_id, draft_id=draft.id, kind=kind,
                requested_variants=1, plan=plan, period_month=month_label(now),
                period_hour=hour or other_hour_label(now), provider=llm.provider,
                model=llm.model, lane="interactive", request_id="seed",
            )  # fmt: skip
            assert uow.generations.mark_running(gen.id, now)
            assert uow.generations.mark_succeeded(gen.id, now)
        uow.commit()
