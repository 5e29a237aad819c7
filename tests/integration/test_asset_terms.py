"""asset_terms, the library's term index (migrations/0006_asset_terms.sql): the trigger
keeps it equal to the live assets' words and tags through every write, and pages read
through it equal a brute-force filter of the assets, whatever the data."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import AssetStatus, Database, Platform, VariantContent
from shared.db.asset_queries import MAX_PREFIX_TERMS, search_query

SECRET = "terms-cursor-secret"
# Words over two letters: every short prefix covers many words (one- and two-letter
# prefixes cover more than MAX_PREFIX_TERMS of them), longer ones few.
_WORDS = st.text(alphabet="abc", min_size=1, max_size=5)
_TAGS = st.lists(st.sampled_from(["x", "y", "z", "x-1"]), max_size=3, unique=True)


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


def _terms(db: Database, owner: str) -> set[tuple[str, datetime, UUID]]:
    with db.uow() as uow:
        rows = uow._session.run(
            "SELECT t.term, t.created_at, t.asset_id FROM asset_terms t "
            "JOIN assets a ON a.id = t.asset_id AND a.platform = t.platform "
            "WHERE t.owner_id = :o",
            o=owner,
        )
        total = uow._session.run("SELECT count(*) FROM asset_terms WHERE owner_id = :o", o=owner)
    # Every term carries its asset's platform (the join above drops any that does not).
    assert len(rows) == total[0][0]
    return {(r[0], r[1], r[2]) for r in rows}


def _expected_terms(db: Database, owner: str) -> set[tuple[str, datetime, UUID]]:
    """What the index must hold: each live asset's lexemes, and its tags as #tag."""
    with db.uow() as uow:
        rows = uow._session.run(
            "SELECT tsvector_to_array(search), tags, created_at, id FROM assets "
            "WHERE owner_id = :o AND deleted_at IS NULL",
            o=owner,
        )
    out: set[tuple[str, datetime, UUID]] = set()
    for lexemes, tags, created_at, asset_id in rows:
        out |= {(w, created_at, asset_id) for w in lexemes}
        out |= {(f"#{t}", created_at, asset_id) for t in tags}
    return out


def _create(db: Database, owner: str, words: list[str], tags: list[str], i: int) -> UUID:
    with db.uow() as uow:
        asset = uow.assets.create(
            owner,
            title=" ".join(words[:2]) or "untitled",
            platform=Platform.TIKTOK if i % 2 else Platform.INSTAGRAM_REELS,
            tags=tags,
            status=AssetStatus.READY,
            content=VariantContent(" ".join(words[2:4]), " ".join(words[4:]), "cap", ()),
            source_draft_id=None,
            source_variant_id=None,
            idempotency_key=None,
        )
        uow.commit()
    return asset.id


def test_every_write_keeps_the_index_equal_to_the_live_assets(db: Database) -> None:
    owner = f"terms-{secrets.token_hex(4)}"
    with db.uow() as uow:
        uow.users.ensure(owner)
        uow.commit()
    a = _create(db, owner, ["alpha", "beta", "Gamma!", "delta", "alpha"], ["x", "y"], 0)
    b = _create(db, owner, ["omega"], [], 1)
    assert _terms(db, owner) == _expected_terms(db, owner)
    assert ("alpha", a) in {(t, i) for t, _, i in _terms(db, owner)}
    assert ("#x", a) in {(t, i) for t, _, i in _terms(db, owner)}

    def row_version(term: str) -> Any:
        with db.uow() as uow:
            return uow._session.run(
                "SELECT xmin::text FROM asset_terms WHERE asset_id = CAST(:a AS uuid) "
                "AND term = :t",
                a=str(a),
                t=term,
            )

    # An edit writes only the difference: the hook's terms survive a new title untouched.
    before = row_version("delta")
    with db.uow() as uow:
        uow.assets.update(owner, a, {"title": "new words"}, None)
        uow.commit()
    assert row_version("delta") == before != []
    assert _terms(db, owner) == _expected_terms(db, owner)

    steps: list[tuple[str, Any]] = [
        ("title", {"title": "zeta eta"}),
        ("tags", {"tags": ("z",)}),
        ("script", {"script": "theta iota"}),
        ("status only: terms untouched", {"status": AssetStatus.ARCHIVED}),
    ]
    for label, change in steps:
        with db.uow() as uow:
            uow.assets.update(owner, a, change, None)
            uow.commit()
        assert _terms(db, owner) == _expected_terms(db, owner), label
    now = datetime.now(UTC)
    with db.uow() as uow:
        assert uow.assets.soft_delete(owner, a, now)
        uow.commit()
    assert {i for _, _, i in _terms(db, owner)} == {b}
    with db.uow() as uow:
        assert uow.assets.restore(owner, a, now - timedelta(days=1)) is not None
        uow.commit()
    assert _terms(db, owner) == _expected_terms(db, owner)
    assert {i for _, _, i in _terms(db, owner)} == {a, b}
    # Hard delete of a live asset (account deletion cascades through here).
    with db.uow() as uow:
        uow._session.run("DELETE FROM assets WHERE id = CAST(:i AS uuid)", i=str(b))
        uow.commit()
    assert {i for _, _, i in _terms(db, owner)} == {a}
    with db.uow() as uow:
        uow._session.run("DELETE FROM users WHERE id = :o", o=owner)
        uow.commit()
    assert _terms(db, owner) == set()


def _brute_force(
    db: Database, owner: str, q: str | None, tags: list[str], platform: str | None
) -> list[UUID]:
    with db.uow() as uow:
        rows = uow._session.run(
            "SELECT id FROM assets WHERE owner_id = :o AND deleted_at IS NULL "
            "AND (CAST(:tsq AS text) IS NULL OR search @@ to_tsquery('simple', :tsq)) "
            "AND tags @> CAST(:tags AS text[]) AND (CAST(:p AS text) IS NULL OR platform = :p) "
            "ORDER BY created_at DESC, id DESC",
            o=owner,
            tsq=search_query(q),
            tags=tags,
            p=platform,
        )
    return [r[0] for r in rows]


def _paged(
    db: Database, owner: str, q: str | None, tags: list[str], platform: str | None, limit: int
) -> list[UUID]:
    out: list[UUID] = []
    cursor: str | None = None
    while True:
        with db.uow() as uow:
            page = uow.assets.list(
                owner,
                q=q,
                tags=tags,
                platform=Platform(platform) if platform else None,
                limit=limit,
                cursor=cursor,
                cursor_secret=SECRET,
            )
        out += [a.id for a in page.items]
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    library=st.lists(st.tuples(st.lists(_WORDS, min_size=1, max_size=6), _TAGS), max_size=40),
    deleted=st.sets(st.integers(0, 39), max_size=5),
    queries=st.lists(
        st.tuples(
            st.none() | st.lists(_WORDS, min_size=1, max_size=2).map(" ".join),
            _TAGS,
            st.sampled_from([None, "tiktok"]),
            st.integers(1, 7),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_pages_equal_a_brute_force_filter(
    db: Database,
    library: list[tuple[list[str], list[str]]],
    deleted: set[int],
    queries: list[tuple[str | None, list[str], str | None, int]],
) -> None:
    owner = f"tp-{secrets.token_hex(4)}"
    with db.uow() as uow:
        uow.users.ensure(owner)
        uow.commit()
    ids = [_create(db, owner, words, tags, i) for i, (words, tags) in enumerate(library)]
    with db.uow() as uow:
        for i in deleted & set(range(len(ids))):
            uow.assets.soft_delete(owner, ids[i], datetime.now(UTC))
        uow.commit()
    assert _terms(db, owner) == _expected_terms(db, owner)
    for q, tags, platform, limit in queries:
        got = _paged(db, owner, q, tags, platform, limit)
        assert got == _brute_force(db, owner, q, tags, platform), (q, tags, platform, limit)


def test_a_prefix_past_the_stream_limit_still_pages_exactly(db: Database) -> None:
    # 'a' covers more words than MAX_PREFIX_TERMS: the walk serves it, same pages.
    owner = f"tw-{secrets.token_hex(4)}"
    with db.uow() as uow:
        uow.users.ensure(owner)
        uow.commit()
    words = [f"a{i:02d}" for i in range(MAX_PREFIX_TERMS + 5)]
    for i, w in enumerate(words):
        _create(db, owner, [w, "filler"], [], i)
    assert _paged(db, owner, "a", [], None, 7) == _brute_force(db, owner, "a", [], None)
    assert _paged(db, owner, "a0", [], None, 3) == _brute_force(db, owner, "a0", [], None)


def test_an_account_deletion_forgets_every_term_of_its_assets(db: Database) -> None:
    # More live assets than the per-term path takes (1000): the owner-range path runs.
    owner, other = f"td-{secrets.token_hex(4)}", f"tk-{secrets.token_hex(4)}"
    with db.uow() as uow:
        for who in (owner, other):
            uow.users.ensure(who)
            uow._session.run(
                "INSERT INTO assets (id, owner_id, title, platform, tags, hook, script, caption) "
                "SELECT gen_random_uuid(), :o, 'Title ' || i, 'tiktok', ARRAY['t' || (i % 3)], "
                "'hook', 'word' || i, 'caption' FROM generate_series(1, 1200) AS i",
                o=who,
            )
        uow.commit()
    assert len(_terms(db, owner)) == 1200 * 6 == len(_expected_terms(db, owner))
    kept = _terms(db, other)
    with db.uow() as uow:
        uow.users.delete(owner)
        uow.commit()
    assert _terms(db, owner) == set()
    assert _terms(db, other) == kept == _expected_terms(db, other)
