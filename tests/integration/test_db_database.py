"""Database: lazy pool, unit of work rollback, dead servers and killed connections."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest

from shared.db import Database
from shared.db.connection import connect
from shared.errors import InternalError, ServiceUnavailable, ValidationFailed


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, max_connections=2, connect_timeout_s=5)
    yield database
    database.close()


def _uid() -> str:
    return f"u-{secrets.token_hex(6)}"


def _backend_pid(db: Database) -> int:
    with db.uow() as uow:
        pid: int = uow._session.run("SELECT pg_backend_pid()")[0][0]
    return pid


def _terminate(admin_url: str, pid: int) -> None:
    conn = connect(admin_url)
    try:
        conn.run("SELECT pg_terminate_backend(CAST(:p AS int))", p=pid)
        # Wait until the backend is really gone, so the test is not racy.
        for _ in range(100):
            if not conn.run("SELECT 1 FROM pg_stat_activity WHERE pid = CAST(:p AS int)", p=pid):
                break
            conn.run("SELECT pg_sleep(0.02)")
    finally:
        conn.close()


def test_dead_port_is_service_unavailable_and_construction_connects_nothing() -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nothing", connect_timeout_s=1)
    with pytest.raises(ServiceUnavailable) as info:
        db.ping()
    assert info.value.status == 503
    assert info.value.__cause__ is not None
    with pytest.raises(ServiceUnavailable), db.uow() as uow:
        uow.users.get("x")


def test_ping(db: Database) -> None:
    db.ping()


def test_uow_rolls_back_unless_committed(db: Database) -> None:
    forgotten, kept, failed = _uid(), _uid(), _uid()
    with db.uow() as uow:
        uow.users.ensure(forgotten)
    with db.uow() as uow:
        uow.users.ensure(kept)
        uow.commit()
    with pytest.raises(RuntimeError), db.uow() as uow:
        uow.users.ensure(failed)
        raise RuntimeError("boom")
    with db.uow() as uow:
        assert uow.users.get(forgotten) is None
        assert uow.users.get(kept) is not None
        assert uow.users.get(failed) is None


def test_work_after_commit_needs_its_own_commit(db: Database) -> None:
    first, second = _uid(), _uid()
    with db.uow() as uow:
        uow.users.ensure(first)
        uow.commit()
        uow.users.ensure(second)
    with db.uow() as uow:
        assert uow.users.get(first) is not None
        assert uow.users.get(second) is None


def test_explicit_rollback_discards(db: Database) -> None:
    user = _uid()
    with db.uow() as uow:
        uow.users.ensure(user)
        uow.rollback()
        uow.commit()
    with db.uow() as uow:
        assert uow.users.get(user) is None


def test_killed_idle_connection_is_replaced_transparently(db: Database, pg_admin_url: str) -> None:
    pid = _backend_pid(db)
    _terminate(pg_admin_url, pid)
    user = _uid()
    with db.uow() as uow:  # same pooled connection, now dead: replaced on BEGIN
        uow.users.ensure(user)
        uow.commit()
    assert _backend_pid(db) != pid
    with db.uow() as uow:
        assert uow.users.get(user) is not None


def test_connection_killed_mid_transaction_fails_that_uow_only(
    db: Database, pg_admin_url: str
) -> None:
    user = _uid()
    with pytest.raises(ServiceUnavailable), db.uow() as uow:
        uow.users.ensure(user)
        _terminate(pg_admin_url, uow._session.run("SELECT pg_backend_pid()")[0][0])
        uow.users.get(user)
    with db.uow() as uow:
        assert uow.users.get(user) is None  # never committed
        uow.users.ensure(user)
        uow.commit()


def test_pool_bounds_connections_and_serves_many_threads(database_url: str) -> None:
    db = Database(database_url, max_connections=3)
    pids: set[int] = set()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(10):
                pid = _backend_pid(db)
                with lock:
                    pids.add(pid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    db.close()
    assert errors == []
    assert 1 <= len(pids) <= 3


def test_exhausted_pool_is_service_unavailable(database_url: str) -> None:
    db = Database(database_url, max_connections=1, connect_timeout_s=0.2)
    try:
        with db.uow() as holder:
            holder.users.get("x")
            with pytest.raises(ServiceUnavailable), db.uow() as other:
                other.users.get("y")
    finally:
        db.close()


def test_driver_errors_are_translated(db: Database) -> None:
    with pytest.raises(InternalError) as info, db.uow() as uow:
        uow._session.run("SELECT 1/0")
    assert "22012" in info.value.message
    with pytest.raises(ValidationFailed), db.uow() as uow:
        uow.users.ensure("nul\x00byte")


def test_statements_are_prepared_once_per_connection_and_again_after_a_reconnect(
    db: Database, pg_admin_url: str
) -> None:
    user = _uid()
    with db.uow() as uow:
        uow.users.touch(user)
        uow.commit()
        conn = uow._session._conn
        assert conn is not None
        prepared = conn.prepared
        assert prepared >= 1
        uow.users.touch(user)  # the same SQL again: reused, not prepared twice
        assert conn.prepared == prepared
    _terminate(pg_admin_url, _backend_pid(db))
    with db.uow() as uow:  # a fresh connection knows no statement: prepared again
        uow.users.touch(user)
        assert uow._session._conn is not None
        assert uow._session._conn.prepared == 1
        assert uow.users.get(user) is not None


def test_autocommit_statement_commits_alone_and_survives_a_killed_idle_connection(
    db: Database, pg_admin_url: str
) -> None:
    user = _uid()
    with db.autocommit() as uow:
        uow.users.touch(user)  # committed by itself: no BEGIN, no COMMIT
    pid = _backend_pid(db)
    _terminate(pg_admin_url, pid)
    other = _uid()
    with db.autocommit() as uow:  # the pooled connection is dead: retried on a fresh one
        uow.users.touch(other)
    with db.uow() as uow:
        assert uow.users.get(user) is not None
        assert uow.users.get(other) is not None
    assert _backend_pid(db) != pid


def test_autocommit_failure_writes_nothing(db: Database) -> None:
    user = _uid()
    with pytest.raises(ValidationFailed), db.autocommit() as uow:
        uow.users.touch(user)
        uow.users.touch("bad\x00id")
    with db.uow() as uow:
        assert uow.users.get(user) is not None  # its own transaction: kept
