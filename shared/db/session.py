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
import select
import threading
from collections import OrderedDict
from typing import Any, Final

import pg8000.exceptions
from pg8000.native import Connection, PreparedStatement

from shared.db.connection import PgParams, connect, parse_database_url
from shared.db.errors import ForeignKeyViolation, UniqueViolation
from shared.errors import AppError, InternalError, ServiceUnavailable, ValidationFailed

__all__ = ["ConnectionPool", "PooledConnection", "Session", "sqlstate", "translate"]

_DRIVER_ERRORS = (pg8000.exceptions.Error, OSError)

# SQLSTATEs meaning "try again later" rather than "bug": serialization failure, deadlock,
# lock_not_available, query_canceled (statement_timeout), and class 53 (resources).
_RETRYABLE = frozenset({"40001", "40P01", "55P03", "57014"})
# The connection itself is gone or going: class 08 and admin/crash shutdowns.
_CONNECTION_LOST = frozenset({"57P01", "57P02", "57P03"})
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})
# A prepared statement the server no longer knows (26000) or whose result type a schema
# change altered (0A000): forget it, the next call prepares it again.
_STALE_STATEMENT = frozenset({"26000", "0A000"})
MAX_PREPARED: Final = 256
"""Prepared statements kept per connection. The SQL texts are a fixed set (the library
filters and draft PATCH fields combine into a few hundred at most); past the cap the
least recently used is closed."""


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


class PooledConnection:
    """A pg8000 connection and the statements prepared on it.

    pg8000 runs a statement with parameters as an unnamed statement: Parse+Sync, then
    Describe+Sync, then Bind+Execute+Sync, three round trips. A statement prepared once
    on the connection costs one (Bind+Execute+Sync) per execution, so every parameterised
    statement is prepared on first use and kept with its connection (a new connection
    after a reconnect starts with none). Statements without parameters (BEGIN, COMMIT)
    use the simple query protocol: one round trip already.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._prepared: OrderedDict[str, PreparedStatement] = OrderedDict()

    def run(self, sql: str, params: dict[str, Any]) -> list[list[Any]] | None:
        if not params:
            rows: list[list[Any]] | None = self.conn.run(sql)
            return rows
        statement = self._prepared.get(sql)
        if statement is None:
            statement = self.conn.prepare(sql)
            self._prepared[sql] = statement
            if len(self._prepared) > MAX_PREPARED:
                _, oldest = self._prepared.popitem(last=False)
                oldest.close()
        else:
            self._prepared.move_to_end(sql)
        try:
            result: list[list[Any]] | None = statement.run(**params)
        except pg8000.exceptions.DatabaseError as exc:
            if sqlstate(exc) in _STALE_STATEMENT:
                self._prepared.pop(sql, None)
            raise
        return result

    def closed_by_server(self) -> bool:
        """An idle connection with bytes (or EOF) to read was closed by the server."""
        sock = getattr(self.conn, "_usock", None)  # pg8000 keeps its socket here
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    @property
    def prepared(self) -> int:
        """How many statements are prepared on this connection."""
        return len(self._prepared)

    def close(self) -> None:
        self.conn.close()


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
        self._idle: list[PooledConnection] = []

    def acquire(self) -> PooledConnection:
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

    def release(self, conn: PooledConnection, *, broken: bool) -> None:
        """Give a connection back; a broken one is closed and forgotten."""
        try:
            if broken:
                _close_quietly(conn)
            else:
                with self._lock:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def replace(self, conn: PooledConnection) -> PooledConnection:
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

    def _open(self) -> PooledConnection:
        try:
            conn = connect(self._params, timeout_s=self._connect_timeout_s)
            # One round trip for every setting. Generic plans: a statement is planned
            # once per connection, not at every execution (planning the library's search
            # cost more than running it). Every statement's plan is chosen by its shape,
            # not by its values (the library reads rare terms through asset_terms), and
            # tests/integration/test_db_schema.py checks the library's generic plans.
            # No JIT: its compile time (~10 ms) dwarfs the millisecond queries it
            # would be weighed against.
            conn.run(
                f"SET statement_timeout = {int(self._statement_timeout_ms)}; "
                "SET plan_cache_mode = force_generic_plan; SET jit = off"
            )
        except _DRIVER_ERRORS as exc:
            raise ServiceUnavailable("The database is unreachable; retry shortly.") from exc
        return PooledConnection(conn)


def _close_quietly(conn: PooledConnection) -> None:
    with contextlib.suppress(*_DRIVER_ERRORS):  # already dead: nothing to close
        conn.close()


class Session:
    """One unit of work's connection: taken on first use, one transaction at a time.

    ``run`` begins a transaction lazily; ``commit`` ends it; ``close`` rolls back what
    was not committed and returns the connection. Not thread-safe (one per uow).

    ``autocommit=True``: no BEGIN; every statement is its own transaction (Postgres
    commits a single statement outside a transaction by itself), and ``commit`` /
    ``rollback`` do nothing. For a unit of work of ONE statement, a read or a CTE that
    writes several tables at once: it saves the BEGIN and the COMMIT round trips.
    """

    def __init__(self, pool: ConnectionPool, *, autocommit: bool = False) -> None:
        self._pool = pool
        self._autocommit = autocommit
        self._conn: PooledConnection | None = None
        self._in_tx = False
        self._broken = False

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Execute one statement inside the current transaction; rows as lists."""
        conn = self._statement_connection()
        try:
            rows = conn.run(sql, params)
        except _DRIVER_ERRORS as exc:
            raise self._fail(exc) from exc
        return rows if rows is not None else []

    def commit(self) -> None:
        """Commit the open transaction (no-op when nothing ran since the last commit)."""
        if not self._in_tx or self._conn is None:
            return
        try:
            self._conn.run("COMMIT", {})
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
            self._conn.run("ROLLBACK", {})
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

    def _statement_connection(self) -> PooledConnection:
        if self._broken:
            raise ServiceUnavailable("The database connection was lost; retry.")
        if self._conn is None:
            conn = self._pool.acquire()
            if self._autocommit:
                # Without a BEGIN to probe it, check the idle connection locally: one
                # the server closed (restart, pg_terminate_backend) has its goodbye or
                # EOF waiting to be read. Replacing it before sending keeps even a write
                # safe (nothing was sent), at no round trip.
                self._conn = self._pool.replace(conn) if conn.closed_by_server() else conn
                return self._conn
            self._conn = self._begin(conn)
            self._in_tx = True
            return self._conn
        if not self._in_tx and not self._autocommit:
            conn, self._conn = self._conn, None
            self._conn = self._begin(conn)
            self._in_tx = True
        return self._conn

    def _begin(self, conn: PooledConnection) -> PooledConnection:
        try:
            conn.run("BEGIN", {})
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
            fresh.run("BEGIN", {})
        except _DRIVER_ERRORS as again:
            raise self._fail(again) from again
        return fresh

    def _fail(self, exc: BaseException) -> AppError:
        if _is_connection_error(exc):
            self._broken = True
            self._in_tx = False
        return translate(exc)
