"""schema.sql and the migrator: idempotent, concurrent-safe, and the library query plan."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.db.assets import _list_sql, search_query
from shared.db.connection import connect
from shared.db.cursor import Keyset
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


# ----------------------------------------------------------------------------------------
# The library list query stays on indexes at 50k assets for one owner.

_BULK_ROWS = 50_000


@pytest.fixture(scope="module")
def big_owner(database_url: str) -> str:
    owner = f"big-{secrets.token_hex(4)}"
    neighbour = f"nb-{secrets.token_hex(4)}"
    conn = connect(database_url, timeout_s=120)
    try:
        conn.run("INSERT INTO users (id) VALUES (:a), (:b)", a=owner, b=neighbour)
        for who, count in ((owner, _BULK_ROWS), (neighbour, 5_000)):
            conn.run(
                """
                INSERT INTO assets (id, owner_id, title, platform, tags, status, hook, script,
                    caption, hashtags, created_at, updated_at)
                SELECT gen_random_uuid(), :owner, 'Title ' || i,
                    (ARRAY['instagram_reels', 'tiktok', 'youtube_shorts'])[1 + i % 3],
                    ARRAY['tag' || (i % 50), 'series' || (i % 7)],
                    (ARRAY['draft', 'ready', 'published', 'archived'])[1 + i % 4],
                    'Hook word' || (i % 1000), 'Script body number ' || i, 'Caption ' || i,
                    ARRAY['#reel'],
                    now() - make_interval(secs => i), now()
                FROM generate_series(1, CAST(:n AS int)) AS i
                """,
                owner=who,
                n=count,
            )
        conn.run("ANALYZE assets")
    finally:
        conn.close()
    return owner


def _plan(database_url: str, owner: str, **filters: Any) -> str:
    binding = {
        "platform": filters.get("platform"),
        "status": filters.get("status"),
        "tags": sorted(filters.get("tags", [])),
        "q": filters.get("q"),
    }
    after = filters.get("after")
    sql, params = _list_sql(
        owner, binding, binding["tags"], search_query(filters.get("q")), after, 20,
        deleted_after=filters.get("deleted_after"),
    )  # fmt: skip
    conn = connect(database_url)
    try:
        rows = conn.run("EXPLAIN " + sql, **params)
    finally:
        conn.close()
    return "\n".join(r[0] for r in rows)


def _split_fallback(plan: str) -> tuple[str, str]:
    """A search plan split into (the rest, the GIN fallback). The fallback is the last
    branch of the top ``Append``; it runs only when the walk of the newest-first index
    stopped at its cap with the page short (a rare word), and its plan is made for the
    planner's estimate, which prefix queries do not have (see the
    rare-word test below). A plan without a search has no fallback."""
    lines = plan.splitlines()
    if not lines or not lines[0].startswith("Append"):
        return plan, ""
    branches = [i for i, x in enumerate(lines) if x.startswith("  ->  ")]
    start = branches[-1]
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith("      ")),
        len(lines),
    )
    return "\n".join(lines[:start] + lines[end:]), "\n".join(lines[start:end])


def _without_rare_count(plan: str) -> str:
    """The plan minus the GIN fallback of a search: the walk that serves common words,
    and the check of whether it was cut, must stay on indexes."""
    return _split_fallback(plan)[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"platform": "tiktok"},
        {"status": "published"},
        {"tags": ["tag7"]},
        {"tags": ["tag7", "series3"]},
        {"q": "word42"},
        {"q": "script body"},
        {"q": "number 31337"},
        {"platform": "tiktok", "status": "ready", "tags": ["tag3"], "q": "hook"},
        {"after": "cursor"},
        {"after": "cursor", "platform": "youtube_shorts"},
        {"after": "cursor", "q": "word7"},
        {"deleted_after": datetime(2000, 1, 1, tzinfo=UTC)},
    ],
    ids=lambda f: "-".join(sorted(f)) or "none",
)
def test_library_list_uses_indexes(
    database_url: str, big_owner: str, filters: dict[str, Any]
) -> None:
    if filters.get("after"):
        conn = connect(database_url)
        try:
            created_at, row_id = conn.run(
                "SELECT created_at, id FROM assets WHERE owner_id = :o "
                "ORDER BY created_at DESC, id DESC OFFSET 25000 LIMIT 1",
                o=big_owner,
            )[0]
        finally:
            conn.close()
        filters = {**filters, "after": Keyset(created_at, row_id)}
    plan = _without_rare_count(_plan(database_url, big_owner, **filters))
    assert "Seq Scan" not in plan, plan
    assert "Index Scan" in plan or "Bitmap Index Scan" in plan, plan


def _analyze(database_url: str, owner: str, **filters: Any) -> tuple[str, int]:
    binding = {
        "platform": filters.get("platform"),
        "status": None,
        "tags": sorted(filters.get("tags", [])),
        "q": filters.get("q"),
    }
    sql, params = _list_sql(owner, binding, binding["tags"], search_query(binding["q"]), None, 20)
    conn = connect(database_url)
    try:
        plan = "\n".join(r[0] for r in conn.run("EXPLAIN (ANALYZE, COSTS OFF) " + sql, **params))
        found = len(conn.run(sql, **params))
    finally:
        conn.close()
    return plan, found


def _gin_lines(plan: str) -> list[str]:
    return [line for line in plan.splitlines() if "assets_live_search_gin_idx" in line]


@pytest.mark.slow
@pytest.mark.parametrize(
    "filters", [{"q": "script body"}, {"q": "word4"}, {"platform": "tiktok", "q": "hook"}]
)
def test_library_search_common_word_never_reads_the_gin_index(
    database_url: str, big_owner: str, filters: dict[str, Any]
) -> None:
    # word4 matches 111 rows in 1000 (word4, word40..49, word400..499): the walk fills
    # 21 well within its cap of 20 rows per item, so the fallback never starts.
    plan, found = _analyze(database_url, big_owner, **filters)
    assert found == 21, plan
    fallback = _split_fallback(plan)[1]
    scans = [x for x in fallback.splitlines() if " on assets" in x]
    assert scans, plan
    assert all("never executed" in x for x in scans), plan
    assert all("never executed" in x for x in _gin_lines(plan)), plan


@pytest.mark.slow
@pytest.mark.parametrize(
    ("filters", "expected"),
    [({"q": "number 31337"}, 1), ({"q": "absentword"}, 0), ({"tags": ["tag7"], "q": "word1"}, 21)],
)
def test_library_search_rare_word_reads_the_gin_index_after_a_bounded_walk(
    database_url: str, big_owner: str, filters: dict[str, Any], expected: int
) -> None:
    # A rare or absent word: the walk stops after its cap (20 rows per item, not the
    # 50k-row library) and the matches come from the GIN index.
    plan, found = _analyze(database_url, big_owner, **filters)
    assert found == expected, plan
    gin = _gin_lines(plan)
    assert gin, plan
    assert not any("never executed" in line for line in gin), plan
    assert any("Bitmap Index Scan" in x for x in _split_fallback(plan)[1].splitlines()), plan
    walked = [int(m) for m in re.findall(r"Limit \(actual time=\S+ rows=(\d+)", plan)]
    assert max(walked) <= 20 * 21, plan


def _ids_by_pages(database_url: str, owner: str, q: str, tags: list[str], pages: int) -> list[Any]:
    binding = {"platform": None, "status": None, "tags": tags, "q": q}
    out: list[Any] = []
    after: Keyset | None = None
    conn = connect(database_url)
    try:
        for _ in range(pages):
            sql, params = _list_sql(owner, binding, tags, search_query(q), after, 20)
            rows = conn.run(sql, **params)
            out += [r[0] for r in rows[:20]]
            if len(rows) <= 20:
                break
            after = Keyset(rows[19][13], rows[19][0])
    finally:
        conn.close()
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("q", "tags"),
    [("word4", []), ("word42", []), ("number 3133", []), ("word1", ["tag7"]), ("nope", [])],
)
def test_library_search_pages_match_a_plain_query(
    database_url: str, big_owner: str, q: str, tags: list[str]
) -> None:
    # Whichever path each page takes (walk, or GIN after a cut walk), the pages chain into
    # exactly what the plain newest-first query returns.
    got = _ids_by_pages(database_url, big_owner, q, tags, pages=15)
    conn = connect(database_url)
    try:
        want = [
            r[0]
            for r in conn.run(
                "SELECT id FROM assets WHERE owner_id = :o AND deleted_at IS NULL "
                "AND search @@ to_tsquery('simple', :tsq) AND tags @> CAST(:tags AS text[]) "
                "ORDER BY created_at DESC, id DESC LIMIT :n",
                o=big_owner,
                tsq=search_query(q),
                tags=tags,
                n=len(got) if len(got) == 300 else 100_000,
            )
        ]
    finally:
        conn.close()
    assert got == want


@pytest.mark.slow
def test_library_search_last_page_of_a_common_word_stays_on_the_walk(
    database_url: str, big_owner: str
) -> None:
    # Nine rows left after the cursor: the walk ends before its cap, so its short page is
    # the answer and the GIN fallback does not run.
    conn = connect(database_url)
    try:
        created_at, row_id = conn.run(
            "SELECT created_at, id FROM assets WHERE owner_id = :o "
            "ORDER BY created_at DESC, id DESC OFFSET 49990 LIMIT 1",
            o=big_owner,
        )[0]
        binding = {"platform": None, "status": None, "tags": [], "q": "script"}
        sql, params = _list_sql(
            big_owner, binding, [], search_query("script"), Keyset(created_at, row_id), 20
        )
        plan = "\n".join(r[0] for r in conn.run("EXPLAIN (ANALYZE, COSTS OFF) " + sql, **params))
        rows = conn.run(sql, **params)
    finally:
        conn.close()
    assert len(rows) == 9
    assert [r[13] for r in rows] == sorted((r[13] for r in rows), reverse=True)
    assert all("never executed" in x for x in _gin_lines(plan)), plan
    scans = [x for x in _split_fallback(plan)[1].splitlines() if " on assets" in x]
    assert scans, plan
    assert all("never executed" in x for x in scans), plan
