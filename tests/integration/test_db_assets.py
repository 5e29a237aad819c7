"""The library: create, keyset pagination, tamper-evident cursors, hostile search input."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import (
    AssetPage,
    AssetStatus,
    Database,
    IdempotencyConflict,
    Platform,
    VariantContent,
)
from shared.db.asset_queries import search_query
from shared.errors import AppError, BadRequest, ValidationFailed

SECRET = "library-cursor-secret"


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture(scope="module")
def library(db: Database) -> str:
    """An owner with 25 assets created in ONE transaction: all share created_at."""
    owner = f"lib-{secrets.token_hex(6)}"
    with db.uow() as uow:
        uow.users.ensure(owner)
        for i in range(25):
            uow.assets.create(
                owner,
                title=f"Hydration Tip {i}" if i % 2 else f"Sleep routine {i}",
                platform=Platform.TIKTOK if i % 3 else Platform.YOUTUBE_SHORTS,
                tags=["health", f"t{i % 4}"],
                status=AssetStatus.READY if i % 5 else AssetStatus.ARCHIVED,
                content=VariantContent(
                    f"Hook about Water {i}", "Drink MORE water daily", f"caption {i}", ("#h2o",)
                ),
                source_draft_id=None,
                source_variant_id=None,
                idempotency_key=None,
            )
        uow.commit()
    return owner


def _page(db: Database, owner: str, **kwargs: object) -> AssetPage:
    with db.uow() as uow:
        return uow.assets.list(owner, cursor_secret=SECRET, **kwargs)  # type: ignore[arg-type]


def _walk(db: Database, owner: str, limit: int, **filters: object) -> list[UUID]:
    seen: list[UUID] = []
    cursor: str | None = None
    for _ in range(100):
        page = _page(db, owner, limit=limit, cursor=cursor, **filters)
        seen.extend(a.id for a in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_create_and_idempotency_key(db: Database) -> None:
    owner = f"lib-{secrets.token_hex(6)}"
    content = VariantContent("hook", "script", "caption", ("#a",))
    args: dict[str, object] = {
        "title": "Saved",
        "platform": Platform.INSTAGRAM_REELS,
        "tags": ["x"],
        "status": AssetStatus.READY,
        "content": content,
        "source_draft_id": None,
        "source_variant_id": None,
        "idempotency_key": "k1",
        "request_fingerprint": "fp-1",
    }
    with db.uow() as uow:
        uow.users.ensure(owner)
        asset = uow.assets.create(owner, **args)  # type: ignore[arg-type]
        with pytest.raises(IdempotencyConflict):
            uow.assets.create(owner, **args)  # type: ignore[arg-type]
        assert uow.assets.find_by_idempotency(owner, "k1", "fp-1") == asset
        # The key's Postgres half replays only the request that saved it.
        assert uow.assets.find_by_idempotency(owner, "k1", "fp-2") is None
        assert uow.assets.get(owner, asset.id) == asset
        assert uow.assets.get("someone-else", asset.id) is None
        uow.commit()
    assert asset.content == content
    assert asset.tags == ("x",)


def test_pagination_walks_every_item_once_in_order(db: Database, library: str) -> None:
    everything = _page(db, library, limit=100)
    assert len(everything.items) == 25
    assert everything.next_cursor is None
    expected = [
        a.id for a in sorted(everything.items, key=lambda a: (a.created_at, a.id), reverse=True)
    ]
    assert [a.id for a in everything.items] == expected
    for limit in (1, 7, 24, 25):
        walked = _walk(db, library, limit)
        assert walked == expected  # no duplicates, nothing skipped, same order


def test_filters_and_pagination_with_filters(db: Database, library: str) -> None:
    everything = _page(db, library, limit=100).items
    cases: list[tuple[dict[str, object], set[UUID]]] = [
        (
            {"platform": Platform.TIKTOK},
            {a.id for a in everything if a.platform is Platform.TIKTOK},
        ),
        (
            {"status": AssetStatus.ARCHIVED},
            {a.id for a in everything if a.status is AssetStatus.ARCHIVED},
        ),
        ({"tags": ["t1", "health"]}, {a.id for a in everything if "t1" in a.tags}),
        ({"q": "hydration"}, {a.id for a in everything if a.title.startswith("Hydration")}),
    ]
    for filters, wanted in cases:
        walked = _walk(db, library, 3, **filters)
        assert len(walked) == len(set(walked)), filters
        assert set(walked) == wanted, filters


def test_search_is_case_insensitive_prefix_and_anded(db: Database, library: str) -> None:
    def count(q: str) -> int:
        return len(_page(db, library, limit=100, q=q).items)

    assert count("WATER") == 25
    assert count("wat") == 25  # prefix
    assert count("hydr tip") == 12
    assert count("hydration sleep") == 0  # AND of words
    assert count("Drink, more! (water)") == 25
    assert count("   ") == 25  # nothing to search for: no filter
    assert count("nothinglikethis") == 0


def test_cursor_errors_are_invalid_cursor(db: Database, library: str) -> None:
    first = _page(db, library, limit=5, platform=Platform.TIKTOK)
    token = first.next_cursor
    assert token is not None
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    attempts: list[tuple[str, dict[str, object]]] = [
        (flipped, {"platform": Platform.TIKTOK}),
        (token, {"platform": Platform.YOUTUBE_SHORTS}),
        (token, {}),
        (token, {"platform": Platform.TIKTOK, "q": "water"}),
        ("garbage!", {"platform": Platform.TIKTOK}),
    ]
    for cursor, filters in attempts:
        with pytest.raises(BadRequest) as info:
            _page(db, library, limit=5, cursor=cursor, **filters)
        assert info.value.code == "INVALID_CURSOR"
    with pytest.raises(BadRequest):
        _page(db, "another-owner", limit=5, cursor=token, platform=Platform.TIKTOK)
    # The limit is not part of the binding: a client may change page size mid-walk.
    assert _page(db, library, limit=50, cursor=token, platform=Platform.TIKTOK).items


def test_limit_bounds(db: Database, library: str) -> None:
    for limit in (0, 101):
        with pytest.raises(ValidationFailed):
            _page(db, library, limit=limit)


HOSTILE = [
    "'",
    '"',
    "'; DROP TABLE assets; --",
    "&|!():*\\",
    "a & | b",
    "!water",
    "water:*",
    "(water",
    "water)",
    "a:A",
    "<->",
    "a <-> b",
    "\x00",
    "wat\x00er",
    "\\x00",
    "::::",
    "*",
    "a" * 5000,
    "word " * 500,
    "日本語 テキスト",
    "emoji 🔥💧",
    "ǅ ǈ ǋ",
    "ⅷ ² ½ ㊿",
    "foo_bar",
    "e-mail",
    "\u0301\u0301",
    "\ufeff",
    "%",
    "_",
]


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_search_strings_are_safe(db: Database, library: str, q: str) -> None:
    page = _page(db, library, limit=10, q=q)
    assert isinstance(page, AssetPage)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=st.text(max_size=80))
def test_any_search_text_never_errors(db: Database, library: str, q: str) -> None:
    try:
        _page(db, library, limit=5, q=q)
    except AppError as exc:  # a typed 4xx would be acceptable; a 5xx is not
        status = exc.status
    else:
        status = 200
    assert status < 500


def test_search_query_only_emits_word_prefixes() -> None:
    assert search_query("Hello, World!") == "hello:* & world:*"
    assert search_query("a&b|c") == "a:* & b:* & c:*"
    assert search_query("x x X") == "x:*"
    assert search_query(None) is None
    assert search_query("!!!") is None
