"""The pg8000 boundary: a small thread-safe connection pool and a per-unit-of-work session.

Every pg8000 / socket error is translated here, once, with ``raise … from exc``:

- connection lost or refused, server shutting down → ``ServiceUnavailable`` (the
  connection is discarded, the next unit of work opens a new one);
- serialization failure, deadlock, lock or statement timeout, too many connections →
  ``ServiceUnavailable`` (retryable);
- unique / foreign-key violation → ``UniqueViolation`` / ``ForeignKeyViolation``
  carrying the constraint name, for repositories to turn into what they mean;
- text Postgres cannot store (a NUL byte) → ``ValidationFailed``;
- anything else → ``InternalError``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pg8000.exceptions
from pg8000.native import Connection

from shared.db.connection import PgParams, connect, parse_database_url
from shared.db.errors import ForeignKeyViolation, UniqueViolation
from shared.errors import AppError, InternalError, ServiceUnavailable, ValidationFailed

__all__ = ["ConnectionPool", "Session", "sqlstate", "translate"]

_DRIVER_ERRORS = (pg8000.exceptions.Error, OSError)

# SQLSTATEs meaning "try again later" rather than "bug": serialization failure, deadlock,
# lock_not_available, query_canceled (statement_timeout), and class 53 (resources).
_RETRYABLE = frozenset({"40001", "40P01", "55P03", "57014"})
# The connection itself is gone or going: class 08 and admin/crash shutdowns.
_CONNECTION_LOST = frozenset({"57P01", "57P02", "57P03"})
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a pg8000 ``DatabaseError`` ('' for anything else)."""
    if isinstance(exc, pg8000.exceptions.DatabaseError) and exc.args:
        info = exc.args[0]
        if isinstance(info, dict):
            return str(info.get("C", ""))
    return ""


def _constraint(exc: BaseException) -> str:
    info = exc.args[0] if exc.args else None
    return str(info.get("n", "")) if isinstance(info, dict) else ""


def _is_connection_error(exc: BaseException) -> bool:
    state = sqlstate(exc)
    if isinstance(exc, pg8000.exceptions.DatabaseError):
        return state.startswith("08") or state in _CONNECTION_LOST
    return isinstance(exc, _DRIVER_ERRORS)


def translate(exc: BaseException) -> AppError:
    """Our exception for a driver error (see the module docstring)."""
    state = sqlstate(exc)
    if _is_connection_error(exc):
        return ServiceUnavailable("The database is unreachable; retry shortly.")
    if state in _RETRYABLE or state.startswith("53"):
        return ServiceUnavailable("The database is busy; retry shortly.")
    if state == "23505":
        return UniqueViolation(_constraint(exc))
    if state == "23503":
        return ForeignKeyViolation(_constraint(exc))
    if state in _UNSTORABLE_TEXT:
        return ValidationFailed.field(["body"], "Text contains characters that cannot be stored.")
    return InternalError(f"Database error (SQLSTATE {state or 'unknown'}).")


class ConnectionPool:
    """At most ``max_connections`` pg8000 connections, opened lazily, reused LIFO.

    ``acquire`` waits up to ``connect_timeout_s`` for a free slot, then answers
    ``ServiceUnavailable`` rather than queueing forever.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        connect_timeout_s: float,
        statement_timeout_ms: int,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._params: PgParams = parse_database_url(url)
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._idle: list[Connection] = []

    def acquire(self) -> Connection:
        """An idle connection or a new one; the caller must ``release`` it."""
        if not self._slots.acquire(timeout=self._connect_timeout_s):
            raise ServiceUnavailable("The database connection pool is exhausted.")
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._open()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Connection, *, broken: bool) -> None:
        """Give a connection back; a broken one is closed and forgotten."""
        try:
            if broken:
                _close_quietly(conn)
            else:
                with self._lock:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def replace(self, conn: Connection) -> Connection:
        """Discard a dead connection and open a new one in the same slot."""
        _close_quietly(conn)
        try:
            return self._open()
        except BaseException:
            self._slots.release()
            raise

    def close(self) -> None:
        """Close idle connections (checked-out ones close when released broken)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    def _open(self) -> Connection:
        try:
            conn = connect(self._params, timeout_s=self._connect_timeout_s)
            conn.run(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
        except _DRIVER_ERRORS as exc:
            raise ServiceUnavailable("The database is unreachable; retry shortly.") from exc
        return conn


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(*_DRIVER_ERRORS):  # already dead: nothing to close
        conn.close()


class Session:
    """One unit of work's connection: taken on first use, one transaction at a time.

    ``run`` begins a transaction lazily; ``commit`` ends it; ``close`` rolls back what
    was not committed and returns the connection. Not thread-safe (one per uow).
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: Connection | None = None
        self._in_tx = False
        self._broken = False

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Execute one statement inside the current transaction; rows as lists."""
        conn = self._transaction()
        try:
            rows: list[list[Any]] = conn.run(sql, **params) if params else conn.run(sql)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc
        return rows if rows is not None else []

    def commit(self) -> None:
        """Commit the open transaction (no-op when nothing ran since the last commit)."""
        if not self._in_tx or self._conn is None:
            return
        try:
            self._conn.run("COMMIT")
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc
        finally:
            self._in_tx = False

    def rollback(self) -> None:
        """Roll back the open transaction; a dead connection is simply discarded."""
        if not self._in_tx or self._conn is None:
            return
        self._in_tx = False
        try:
            self._conn.run("ROLLBACK")
        except _DRIVER_ERRORS:
            self._broken = True  # the server rolls back when the connection closes

    def close(self) -> None:
        """Roll back anything uncommitted and hand the connection back to the pool."""
        try:
            self.rollback()
        finally:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                self._pool.release(conn, broken=self._broken)

    def _transaction(self) -> Connection:
        if self._broken:
            raise ServiceUnavailable("The database connection was lost; retry.")
        if self._conn is None:
            self._conn = self._pool.acquire()
        if not self._in_tx:
            conn, self._conn = self._conn, None
            self._conn = self._begin(conn)
            self._in_tx = True
        return self._conn

    def _begin(self, conn: Connection) -> Connection:
        try:
            conn.run("BEGIN")
        except _DRIVER_ERRORS as exc:
            if not _is_connection_error(exc):
                self._conn = conn
                raise self._fail(exc) from exc
        else:
            return conn
        # An idle pooled connection may have died (server restart, idle timeout,
        # pg_terminate_backend). Nothing ran in this transaction yet, so one retry on a
        # fresh connection is safe and hides the failure from the caller. If opening
        # fails, ``replace`` has freed the slot and we hold no connection.
        fresh = self._pool.replace(conn)
        self._conn = fresh
        try:
            fresh.run("BEGIN")
        except _DRIVER_ERRORS as again:
            raise self._fail(again) from again
        return fresh

    def _fail(self, exc: BaseException) -> AppError:
        if _is_connection_error(exc):
            self._broken = True
            self._in_tx = False
        return translate(exc)
