"""Postgres stopped after admission (a private cluster the test owns, ``initdb`` in a
temp dir, stopped with ``pg_ctl stop -m immediate``, i.e. a crash).

Admission happens in Redis first; the DB transaction then fails. The answer is 503
SERVICE_UNAVAILABLE with Retry-After, the admission is refunded and released (monthly
count and leases exactly as before, read through the ``Enforcer`` itself, not the API),
the Idempotency-Key is not pinned, nothing half-written survives, and when Postgres is
back the next create succeeds without restarting the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shared.bootstrap import Container
from shared.db import Database, UnitOfWork
from shared.db.migrate import migrate
from shared.enforcement import Enforcer
from tests.e2e.api_support import CREATE, RecordingQueue, assert_error, count_rows, derive
from tests.support.e2e import Api
from tests.support.load import PrivatePostgres
from tests.support.usage_truth import assert_usage_matches_postgres

pytestmark = pytest.mark.load


class _CrashBeforeGenerationInsert:
    """``uow.generations`` whose inserts first crash the cluster (once armed), then run
    for real on the connection the unit of work already holds (a create's user, draft
    and generation are one statement: it meets a dead server)."""

    def __init__(self, real: Any, crash: Callable[[], None]) -> None:
        self._real, self._crash = real, crash

    def create(self, **kw: Any) -> Any:
        self._crash()
        return self._real.create(**kw)

    def create_with_draft(self, **kw: Any) -> Any:
        self._crash()
        return self._real.create_with_draft(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CrashingDb:
    """The real ``Database``; when ``armed``, Postgres dies in the middle of the create tx."""

    def __init__(self, real: Database, pg: PrivatePostgres) -> None:
        self._real, self._pg = real, pg
        self.armed = False

    def _crash(self) -> None:
        if self.armed:
            self.armed = False
            self._pg.stop("immediate")

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        with self._real.uow() as uow:
            uow.generations = _CrashBeforeGenerationInsert(uow.generations, self._crash)  # type: ignore[assignment]
            yield uow

    @contextmanager
    def autocommit(self) -> Iterator[UnitOfWork]:
        with self._real.autocommit() as uow:
            uow.generations = _CrashBeforeGenerationInsert(uow.generations, self._crash)  # type: ignore[assignment]
            yield uow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _meters(enforcer: Enforcer, c: Container, user_id: str) -> tuple[int, int]:
    snap = enforcer.usage(user_id, c.now())
    return snap.generations.used, snap.concurrency.used


@pytest.mark.usefixtures("pinned_clock")
def test_postgres_stopped_after_admission_refunds_and_releases(
    private_postgres: PrivatePostgres,
    container: Container,
    base_env: dict[str, str],
    run_prefix: str,
    api: Callable[..., Api],
    use_container: Callable[[Container], Container],
) -> None:
    migrate(private_postgres.url)
    real_db = Database(private_postgres.url)
    db = CrashingDb(real_db, private_postgres)
    env = {"DATABASE_URL": private_postgres.url, "REDIS_KEY_PREFIX": f"{run_prefix}pg"}
    c = use_container(derive(container, base_env, env, queue=RecordingQueue(), db=db))
    user = api("pro")
    try:
        r = user.post("/v1/create", CREATE)  # one held lease and one unit, to compare against
        assert r.status_code == 202, r.text
        before = _meters(c.enforcer, c, user.user_id)
        assert before == (1, 1)

        # 1. Stopped between requests: the plan and counters are in Redis, so admission
        #    passes and only the transaction that follows fails.
        private_postgres.stop("immediate")
        r = user.post("/v1/create", CREATE, **{"Idempotency-Key": "pg-down-1"})
        assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert _meters(c.enforcer, c, user.user_id) == before
        private_postgres.start()

        # 2. Crashed while the create's statement is sent (user, draft and generation in
        #    one statement: it runs whole or not at all).
        db.armed = True
        r = user.post("/v1/create", CREATE, **{"Idempotency-Key": "pg-down-2"})
        assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert not db.armed
        assert _meters(c.enforcer, c, user.user_id) == before
        private_postgres.start()

        # Back: no server restart, the pool reconnects; the keys were not pinned.
        for key in ("pg-down-1", "pg-down-2"):
            r = user.post("/v1/create", CREATE, **{"Idempotency-Key": key})
            assert r.status_code == 202, r.text
            assert "Idempotent-Replayed" not in r.headers
        assert _meters(c.enforcer, c, user.user_id) == (3, 3)
        assert count_rows(private_postgres.url, "drafts", user.user_id) == 3
        assert count_rows(private_postgres.url, "generations", user.user_id) == 3
        # Hourly included: the two undone admissions gave their hourly unit back.
        assert_usage_matches_postgres(user.get("/v1/usage"), private_postgres.url, user.user_id)
    finally:
        real_db.close()
