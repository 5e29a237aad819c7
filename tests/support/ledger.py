"""Seed the usage ledger at chosen times, in a database of its own.

The rollup and the cost report aggregate every user's rows for a day, and the rollup's
watermark is one row per database: tests that run them get a fresh database (not the
run's shared one), whose TimeZone is far from UTC so any day computed in the session's
time zone instead of UTC lands on the wrong day.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import uuid4

from shared.db import Database, GenerationKind, LedgerEntry
from shared.db.connection import connect, parse_database_url
from shared.db.migrate import migrate
from shared.plans import PlanName
from tests.support import servers

# UTC+14: a day boundary in the session's zone is 14 hours away from UTC's.
FAR_FROM_UTC = "Pacific/Kiritimati"


@dataclass(frozen=True)
class Row:
    user: str
    at: datetime
    plan: str = "pro"
    model: str = "MiniMax-M2.5"
    prompt_tokens: int = 100
    completion_tokens: int = 50
    cost_micro_usd: int = 1_000
    billable: bool = True


@contextmanager
def reporting_database() -> Iterator[str]:
    """A fresh, migrated database whose default TimeZone is ``FAR_FROM_UTC``."""
    admin = servers.admin_postgres_url()
    url = servers.create_database(admin)
    conn = connect(admin)
    try:
        name = parse_database_url(url).database
        conn.run(f"ALTER DATABASE \"{name}\" SET timezone TO '{FAR_FROM_UTC}'")
    finally:
        conn.close()
    migrate(url)
    try:
        yield url
    finally:
        servers.drop_database(admin, url)


def reset(db: Database) -> None:
    """Forget every ledger row, rollup row and the watermark (this database only)."""
    with db.uow() as uow:
        uow._session.run("TRUNCATE usage_ledger, usage_daily, usage_rollup_state")
        uow.commit()


def seed(db: Database, rows: Iterable[Row]) -> None:
    """One user/draft/generation and one ledger row (created at ``row.at``) per row."""
    with db.uow() as uow:
        s = uow._session
        for row in rows:
            s.run("INSERT INTO users (id) VALUES (:u) ON CONFLICT DO NOTHING", u=row.user)
            draft, gen = uuid4(), uuid4()
            s.run(
                "INSERT INTO drafts (id, owner_id, brief, platform, duration_seconds, language) "
                "VALUES (CAST(:d AS uuid), :u, 'b', 'tiktok', 30, 'en')",
                d=str(draft),
                u=row.user,
            )
            s.run(
                "INSERT INTO generations (id, owner_id, draft_id, kind, status, "
                "requested_variants, plan, period_month, period_hour, provider, model, lane, "
                "request_id) VALUES (CAST(:g AS uuid), :u, CAST(:d AS uuid), 'create', "
                "'succeeded', 1, :p, :m, :h, 'minimax', :model, 'interactive', 'r')",
                g=str(gen),
                u=row.user,
                d=str(draft),
                p=row.plan,
                m=row.at.strftime("%Y-%m"),
                h=row.at.strftime("%Y%m%d%H"),
                model=row.model,
            )
            assert uow.ledger.record(
                LedgerEntry(
                    generation_id=gen,
                    owner_id=row.user,
                    month=row.at.strftime("%Y-%m"),
                    plan=PlanName(row.plan),
                    kind=GenerationKind.CREATE,
                    provider="minimax",
                    model=row.model,
                    prompt_tokens=row.prompt_tokens,
                    completion_tokens=row.completion_tokens,
                    cost_micro_usd=row.cost_micro_usd,
                    billable=row.billable,
                    created_at=row.at,
                )
            )
        uow.commit()


def daily_rows(db: Database) -> list[tuple[object, ...]]:
    """usage_daily, ordered, without computed_at."""
    with db.uow() as uow:
        rows = uow._session.run(
            "SELECT day, user_id, plan, model, generations, failed, prompt_tokens, "
            "completion_tokens, cost_micro_usd FROM usage_daily ORDER BY 1, 2, 3, 4"
        )
    return [tuple(r) for r in rows]
