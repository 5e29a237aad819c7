"""schema.sql and the migrator: idempotent, concurrent-safe (plans: test_library_plans)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db.connection import connect
from shared.db.migrate import SCHEMA_PATH, SCHEMA_VERSION, MigrationError, migrate, pending_files
from tests.support import servers


@pytest.fixture
def fresh_url(pg_admin_url: str) -> Iterator[str]:
    """An empty database of its own (the session database is already migrated)."""
    url = servers.create_database(pg_admin_url)
    yield url
    servers.drop_database(pg_admin_url, url)


def _applied(url: str) -> list[str]:
    conn = connect(url)
    try:
        return [r[0] for r in conn.run("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        conn.close()


def test_migrate_again_is_a_no_op(database_url: str) -> None:
    assert migrate(database_url) == []
    assert SCHEMA_VERSION in _applied(database_url)


def test_schema_sql_applied_twice_directly_is_harmless(fresh_url: str) -> None:
    sql = SCHEMA_PATH.read_text(encoding="utf-8")
    conn = connect(fresh_url)
    try:
        conn.run(sql)
        conn.run(sql)
        tables = {
            r[0] for r in conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        conn.close()
    assert {
        "users",
        "subscriptions",
        "boosts",
        "drafts",
        "generations",
        "variants",
        "assets",
        "usage_ledger",
        "stripe_events",
        "schema_migrations",
    } <= tables
    # And the migrator on top of it records the version (then applies the migrations).
    assert migrate(fresh_url) == [SCHEMA_VERSION, *(version for version, _ in pending_files())]


def test_concurrent_migrations_apply_each_version_once(fresh_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_note.sql").write_text(
        "CREATE TABLE migration_probe (id int PRIMARY KEY);INSERT INTO migration_probe VALUES (1);",
        encoding="utf-8",
    )
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(fresh_url, migrations_dir=tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(v for r in results for v in r) == [SCHEMA_VERSION, "0001_note"]
    assert _applied(fresh_url) == [SCHEMA_VERSION, "0001_note"]


def test_a_failing_migration_leaves_nothing_behind(fresh_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text(
        "CREATE TABLE half_done (id int); SELECT 1/0;", encoding="utf-8"
    )
    with pytest.raises(MigrationError, match="0001_bad"):
        migrate(fresh_url, migrations_dir=tmp_path)
    assert _applied(fresh_url) == [SCHEMA_VERSION]
    conn = connect(fresh_url)
    try:
        assert conn.run("SELECT to_regclass('half_done')") == [[None]]
    finally:
        conn.close()


def test_badly_named_migration_files_are_refused(fresh_url: str, tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1;", encoding="utf-8")
    with pytest.raises(MigrationError, match="1_oops"):
        migrate(fresh_url, migrations_dir=tmp_path)


def test_named_constraints_and_indexes_exist(database_url: str) -> None:
    conn = connect(database_url)
    try:
        constraint = conn.run(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'variants_generation_index_key' AND contype = 'u'"
        )
        indexes = {r[0] for r in conn.run("SELECT indexname FROM pg_indexes")}
        uncommented = conn.run(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "AND obj_description(c.oid, 'pg_class') IS NULL"
        )
        # Text columns with neither a CHECK nor a FK (a FK is bounded by the key it points to).
        unbounded = conn.run(
            """
            SELECT c.relname, a.attname FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0
              AND a.atttypid IN ('text'::regtype, 'text[]'::regtype)
              AND NOT EXISTS (
                SELECT 1 FROM pg_constraint k
                WHERE k.conrelid = c.oid AND k.contype IN ('c', 'f') AND a.attnum = ANY (k.conkey))
            """
        )
    finally:
        conn.close()
    assert constraint == [["UNIQUE (generation_id, index)"]]
    assert {
        "generations_one_active_per_draft",
        "assets_live_owner_created_idx",
        "assets_live_search_gin_idx",
        "assets_live_tags_gin_idx",
        "drafts_live_owner_created_idx",
        "assets_deleted_at_idx",
    } <= indexes
    assert uncommented == []
    assert unbounded == []
