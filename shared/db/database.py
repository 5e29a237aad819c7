"""``Database``: the pool and the unit of work, the only way services touch Postgres.

    db = Database(url)                     # connects nothing yet
    with db.uow() as uow:                  # one transaction
        draft = uow.drafts.create(...)
        uow.generations.create(...)
        uow.commit()                       # without this, everything is rolled back

Leaving the block without ``commit()`` (normally or by an exception) rolls back. After
``commit()`` the unit of work may keep going; the next statement opens a new
transaction, which is again rolled back unless committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.db.accounts import (
    PgBoosts,
    PgStripeEvents,
    PgStripeTombstones,
    PgSubscriptions,
    PgUsers,
)
from shared.db.assets import PgAssets
from shared.db.credits import PgCredits
from shared.db.drafts import PgDrafts
from shared.db.generations import PgGenerations
from shared.db.ledger import PgLedger
from shared.db.notices import PgNotices
from shared.db.rollup import PgRollup
from shared.db.session import ConnectionPool, Session
from shared.db.variants import PgVariants

__all__ = ["Database", "UnitOfWork"]


class UnitOfWork:
    """The repositories of one transaction; see the module docstring."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.users = PgUsers(session)
        self.subscriptions = PgSubscriptions(session)
        self.boosts = PgBoosts(session)
        self.drafts = PgDrafts(session)
        self.generations = PgGenerations(session)
        self.variants = PgVariants(session)
        self.assets = PgAssets(session)
        self.ledger = PgLedger(session)
        self.rollup = PgRollup(session)
        self.stripe_events = PgStripeEvents(session)
        self.stripe_tombstones = PgStripeTombstones(session)
        self.credits = PgCredits(session)
        self.notices = PgNotices(session)

    def snapshot(self) -> None:
        """Make this transaction a read-only snapshot: every later read sees the database
        as of its first statement (a long export reads one consistent state). Call it
        before any other statement of the transaction."""
        self._session.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    def commit(self) -> None:
        """Make everything done so far durable."""
        self._session.commit()

    def rollback(self) -> None:
        """Discard everything since the last commit (also done on exit)."""
        self._session.rollback()


class Database:
    """A small thread-safe pool of pg8000 connections, opened lazily.

    Nothing connects at construction. A connection that died while idle is replaced
    transparently at the start of the next unit of work; one that dies mid-transaction
    fails that unit of work with ``ServiceUnavailable`` and is discarded. Connection
    failures are ``ServiceUnavailable`` (503, retryable), never driver exceptions.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 4,
        connect_timeout_s: float = 10,
        statement_timeout_ms: int = 30_000,
    ) -> None:
        # statement_timeout: a runaway query fails (503) instead of holding a pooled
        # connection past the Cloud Function's own timeout.
        self.max_connections = max_connections
        self._pool = ConnectionPool(
            url,
            max_connections=max_connections,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_ms=statement_timeout_ms,
        )

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        """A unit of work: one transaction, rolled back unless ``commit()`` was called."""
        session = Session(self._pool)
        try:
            yield UnitOfWork(session)
        finally:
            session.close()

    @contextmanager
    def autocommit(self) -> Iterator[UnitOfWork]:
        """A unit of work without BEGIN: each statement is its own transaction.

        For ONE statement (a read, or a CTE writing several tables): it saves the BEGIN
        and COMMIT round trips. ``commit`` and ``rollback`` do nothing here.
        """
        session = Session(self._pool, autocommit=True)
        try:
            yield UnitOfWork(session)
        finally:
            session.close()

    def ping(self) -> None:
        """Readiness: returns when Postgres answers, else raises ``ServiceUnavailable``."""
        session = Session(self._pool)
        try:
            session.run("SELECT 1")
        finally:
            session.close()

    def close(self) -> None:
        """Close idle connections (tests, shutdown)."""
        self._pool.close()
