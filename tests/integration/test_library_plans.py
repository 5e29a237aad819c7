"""The library listing at 50k assets for one owner: its generic plans stay on indexes,
a rare tag or word reads ~a page of rows through ``asset_terms``, and every path pages
exactly like a plain newest-first query.

Connections run ``plan_cache_mode = force_generic_plan`` (shared/db/session.py): a
statement is planned once, without its values. So the plans checked here are generic
ones, as the API runs them: ``PREPARE`` then ``EXPLAIN (ANALYZE) EXECUTE``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pg8000.native
import pytest

from shared.db.asset_queries import MAX_PREFIX_TERMS, WALK_ROWS_PER_ITEM, list_sql, search_query
from shared.db.connection import connect
from shared.db.cursor import Keyset

pytestmark = pytest.mark.slow

_ROWS = 50_000
# A term's matches newest first (not the candidates' counting, which reads asset_terms x).
_STREAM = "Index Only Scan Backward using asset_terms_pkey on asset_terms t "
_PAGE = 20


@pytest.fixture(scope="module")
def big_owner(database_url: str) -> str:
    """50k assets: tags tag{i%50}, series{i%7} and, 1 in 1000, rare; the hook says
    word{i%1000} (word4 covers 111 words); 1 in 1000 scripts say zulu. A neighbour with
    5k assets shares every word."""
    owner = f"big-{secrets.token_hex(4)}"
    neighbour = f"nb-{secrets.token_hex(4)}"
    conn = connect(database_url, timeout_s=300)
    try:
        conn.run("INSERT INTO users (id) VALUES (:a), (:b)", a=owner, b=neighbour)
        for who, count in ((owner, _ROWS), (neighbour, 5_000)):
            conn.run(
                """
                INSERT INTO assets (id, owner_id, title, platform, tags, status, hook, script,
                    caption, hashtags, created_at, updated_at)
                SELECT gen_random_uuid(), :owner, 'Title ' || i,
                    (ARRAY['instagram_reels', 'tiktok', 'youtube_shorts'])[1 + i % 3],
                    ARRAY['tag' || (i % 50), 'series' || (i % 7)]
                        || CASE WHEN i % 1000 = 0 THEN ARRAY['rare'] ELSE '{}' END,
                    (ARRAY['draft', 'ready', 'published', 'archived'])[1 + i % 4],
                    'Hook word' || (i % 1000),
                    'Script body number ' || i
                        || CASE WHEN i % 1000 = 0 THEN ' zulu' ELSE '' END,
                    'Caption ' || i, ARRAY['#reel'],
                    now() - make_interval(secs => i), now()
                FROM generate_series(1, CAST(:n AS int)) AS i
                """,
                owner=who,
                n=count,
            )
        conn.run("VACUUM (ANALYZE) assets")
        conn.run("VACUUM (ANALYZE) asset_terms")
    finally:
        conn.close()
    return owner


@pytest.fixture
def conn(database_url: str) -> Iterator[pg8000.native.Connection]:
    c = connect(database_url)
    c.run("SET plan_cache_mode = force_generic_plan; SET jit = off")
    yield c
    c.close()


def _query(owner: str, **filters: Any) -> tuple[str, dict[str, Any]]:
    binding = {
        "platform": filters.get("platform"),
        "status": filters.get("status"),
        "tags": sorted(filters.get("tags", [])),
        "q": filters.get("q"),
    }
    return list_sql(
        owner, binding, filters.get("after"), _PAGE, deleted_after=filters.get("deleted_after")
    )


def _generic_plan(conn: pg8000.native.Connection, sql: str, params: dict[str, Any]) -> str:
    """EXPLAIN ANALYZE of the statement's generic plan, run with ``params``."""
    numbered, values = pg8000.native.to_statement(sql)
    args = values(params)
    name = f"p_{secrets.token_hex(4)}"
    conn.run(f"PREPARE {name} AS {numbered}")
    try:
        # EXECUTE takes no bind parameters: its arguments are literals.
        literals = ", ".join(pg8000.native.literal(v) for v in args)
        rows = conn.run(f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE {name}({literals})")
    finally:
        conn.run(f"DEALLOCATE {name}")
    plan = "\n".join(r[0] for r in rows)
    # Generic: the values are parameters, not constants folded into the plan.
    assert "$1" in plan or "Seq Scan" not in plan, plan
    return plan


def _cursor_at(database_url: str, owner: str, offset: int) -> Keyset:
    c = connect(database_url)
    try:
        created_at, row_id = c.run(
            "SELECT created_at, id FROM assets WHERE owner_id = :o "
            "ORDER BY created_at DESC, id DESC OFFSET CAST(:k AS int) LIMIT 1",
            o=owner,
            k=offset,
        )[0]
    finally:
        c.close()
    return Keyset(created_at, row_id)


def _executed(plan: str, needle: str) -> list[str]:
    return [x for x in plan.splitlines() if needle in x and "never executed" not in x]


def _loops(plan: str, needle: str) -> int:
    """How many times the nodes matching ``needle`` ran (one primary key lookup each)."""
    total = 0
    for line in _executed(plan, needle):
        m = re.search(r"loops=(\d+)", line)
        assert m, line
        total += int(m.group(1))
    return total


def _rows_read(plan: str, needle: str) -> int:
    """Rows the nodes matching ``needle`` returned, over all their loops."""
    total = 0
    for line in _executed(plan, needle):
        m = re.search(r"rows=(\d+) loops=(\d+)", line)
        assert m, line
        total += int(m.group(1)) * int(m.group(2))
    return total


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"platform": "tiktok"},
        {"status": "published"},
        {"tags": ["tag7"]},
        {"tags": ["tag7", "series3"]},
        {"tags": ["rare"]},
        {"q": "word42"},
        {"q": "script body"},
        {"q": "number 31337"},
        {"q": "zulu"},
        {"q": "word4"},
        {"platform": "tiktok", "status": "ready", "tags": ["tag3"], "q": "hook"},
        {"after": 25_000},
        {"after": 25_000, "platform": "youtube_shorts"},
        {"after": 25_000, "q": "word7"},
        {"after": 25_000, "tags": ["rare"]},
        {"deleted_after": datetime(2000, 1, 1, tzinfo=UTC)},
        {"deleted_after": datetime(2000, 1, 1, tzinfo=UTC), "q": "zulu"},
    ],
    ids=lambda f: "-".join(sorted(f)) or "none",
)
def test_generic_plans_stay_on_indexes(
    database_url: str, big_owner: str, conn: pg8000.native.Connection, filters: dict[str, Any]
) -> None:
    if "after" in filters:
        filters = {**filters, "after": _cursor_at(database_url, big_owner, filters["after"])}
    plan = _generic_plan(conn, *_query(big_owner, **filters))
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan


@pytest.mark.parametrize(
    ("filters", "found", "lookups"),
    [
        ({"tags": ["rare"]}, 21, 21),
        ({"tags": ["absent"]}, 0, 0),
        ({"q": "zulu"}, 21, 21),
        ({"q": "ZULU!"}, 21, 21),
        ({"q": "absentword"}, 0, 0),
        # 17 of the 50 zulu assets are on tiktok: every zulu asset is looked up.
        ({"platform": "tiktok", "q": "zulu"}, 17, 50),
        # The rarest term drives: #rare (50 assets), not tag3 or script (thousands).
        ({"tags": ["rare", "tag0"], "q": "script"}, 21, 21),
        ({"tags": ["tag0"], "q": "zulu"}, 21, 21),
        # Both past the count cap: tag7 (1000 assets) reaches further back in its newest
        # 256 than series3 (7143), so tag7 drives: ~7 entries per item, not ~50.
        ({"tags": ["series3", "tag7"]}, 21, 160),
        # number covers 50k assets, 31337 one.
        ({"q": "number 31337"}, 1, 1),
    ],
    ids=lambda v: str(v),
)
def test_a_rare_term_reads_a_page_not_the_library(
    big_owner: str,
    conn: pg8000.native.Connection,
    filters: dict[str, Any],
    found: int,
    lookups: int,
) -> None:
    # The newest-first walk would read up to 20 rows per item (420) and then every match
    # through GIN; the term stream reads about a page.
    sql, params = _query(big_owner, **filters)
    plan = _generic_plan(conn, sql, params)
    assert len(conn.run(sql, **params)) == found
    assert _rows_read(plan, _STREAM) <= lookups, plan
    # Each entry read is tested against the filters by id, and each item then fetched.
    assert _loops(plan, "Index Scan using assets_pkey") <= lookups + found, plan
    assert not _executed(plan, "assets_live_owner_created_idx"), plan
    assert not _executed(plan, "assets_live_search_gin_idx"), plan
    assert not _executed(plan, "assets_live_tags_gin_idx"), plan


def test_a_platform_is_skipped_in_the_index_not_by_reading_assets(
    big_owner: str, conn: pg8000.native.Connection
) -> None:
    # 17 of the 50 zulu assets are on tiktok: the other 33 entries are passed over in
    # asset_terms (it carries the platform), so only the 17 matches are read, twice each
    # (tested, then fetched for the page).
    sql, params = _query(big_owner, platform="tiktok", q="zulu")
    plan = _generic_plan(conn, sql, params)
    assert len(conn.run(sql, **params)) == 17
    assert _rows_read(plan, _STREAM) == 17, plan
    assert _loops(plan, "Index Scan using assets_pkey") == 2 * 17, plan


def test_a_prefix_of_many_words_is_served_by_the_walk(
    big_owner: str, conn: pg8000.native.Connection
) -> None:
    # word4 covers word4, word40..49 and word400..499 (111 words > MAX_PREFIX_TERMS): one
    # stream per word would cost more than the walk, which 1 match in 9 fills quickly.
    assert MAX_PREFIX_TERMS < 111
    sql, params = _query(big_owner, q="word4")
    plan = _generic_plan(conn, sql, params)
    assert len(conn.run(sql, **params)) == _PAGE + 1
    assert not _executed(plan, _STREAM), plan
    assert _executed(plan, "assets_live_owner_created_idx"), plan
    assert not _executed(plan, "assets_live_search_gin_idx"), plan
    walked = [int(m) for m in re.findall(r"Limit \(actual time=\S+ rows=(\d+)", plan)]
    assert max(walked) <= WALK_ROWS_PER_ITEM * (_PAGE + 1), plan


def test_a_prefix_of_a_few_words_merges_their_streams(
    big_owner: str, conn: pg8000.native.Connection
) -> None:
    # word42 covers word42 and word420..429: 11 streams of at most a page each, merged.
    sql, params = _query(big_owner, q="word42")
    plan = _generic_plan(conn, sql, params)
    assert len(conn.run(sql, **params)) == _PAGE + 1
    assert _rows_read(plan, _STREAM) <= 11 * 21, plan
    assert not _executed(plan, "assets_live_owner_created_idx"), plan


def _ids_by_pages(database_url: str, owner: str, pages: int, **filters: Any) -> list[Any]:
    out: list[Any] = []
    after: Keyset | None = None
    c = connect(database_url)
    try:
        for _ in range(pages):
            sql, params = _query(owner, after=after, **filters)
            rows = c.run(sql, **params)
            out += [r[0] for r in rows[:_PAGE]]
            if len(rows) <= _PAGE:
                break
            after = Keyset(rows[_PAGE - 1][13], rows[_PAGE - 1][0])
    finally:
        c.close()
    return out


@pytest.mark.parametrize(
    "filters",
    [
        {"q": "word4"},
        {"q": "word42"},
        {"q": "number 3133"},
        {"q": "zulu"},
        {"q": "nope"},
        {"tags": ["tag7"], "q": "word1"},
        {"tags": ["rare"]},
        {"tags": ["rare", "series0"]},
        {"platform": "tiktok", "q": "zulu"},
        {"status": "archived", "tags": ["tag3"]},
        {"q": "w"},
    ],
    ids=lambda f: str(f),
)
def test_pages_match_a_plain_query(
    database_url: str, big_owner: str, filters: dict[str, Any]
) -> None:
    # Whichever path each page takes (term streams, or the walk and its GIN fallback),
    # the pages chain into exactly what the plain newest-first query returns.
    got = _ids_by_pages(database_url, big_owner, 15, **filters)
    tags = sorted(filters.get("tags", []))
    c = connect(database_url)
    try:
        want = [
            r[0]
            for r in c.run(
                "SELECT id FROM assets WHERE owner_id = :o AND deleted_at IS NULL "
                "AND (CAST(:tsq AS text) IS NULL OR search @@ to_tsquery('simple', :tsq)) "
                "AND tags @> CAST(:tags AS text[]) "
                "AND (CAST(:p AS text) IS NULL OR platform = :p) "
                "AND (CAST(:s AS text) IS NULL OR status = :s) "
                "ORDER BY created_at DESC, id DESC LIMIT CAST(:n AS int)",
                o=big_owner,
                tsq=search_query(filters.get("q")),
                tags=tags,
                p=filters.get("platform"),
                s=filters.get("status"),
                n=15 * _PAGE,
            )
        ]
    finally:
        c.close()
    assert got == want


def test_the_last_page_of_a_common_prefix_stays_on_the_walk(
    database_url: str, big_owner: str, conn: pg8000.native.Connection
) -> None:
    # Nine rows left after the cursor: the walk ends before its cap, so its short page is
    # the answer and the GIN fallback does not run.
    after = _cursor_at(database_url, big_owner, _ROWS - 10)
    sql, params = _query(big_owner, q="word", after=after)
    plan = _generic_plan(conn, sql, params)
    rows = conn.run(sql, **params)
    assert len(rows) == 9
    assert [r[13] for r in rows] == sorted((r[13] for r in rows), reverse=True)
    assert not _executed(plan, "assets_live_search_gin_idx"), plan
