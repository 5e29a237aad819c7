"""The library: saved assets, keyset-paginated listing and word-prefix search."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

import builtins
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from shared.db.cursor import Keyset, decode_cursor, encode_cursor, keyset_after
from shared.db.errors import IdempotencyConflict
from shared.db.models import Asset, AssetPage, AssetStatus, Platform, VariantContent
from shared.db.session import Session
from shared.errors import NotFound, PreconditionFailed, ValidationFailed

__all__ = ["MAX_PAGE_SIZE", "PgAssets", "search_query", "search_words", "unsearchable"]

MAX_PAGE_SIZE: Final = 100
MAX_PREFIX_TERMS: Final = 32
"""A searched word covering more words than this (in the owner's library) is served by the
newest-first walk instead of one stream per covered word."""
DRIVER_COUNT_CAP: Final = 256
"""Candidate terms of a page are counted up to this many matches to pick the rarest."""
# The last Unicode code point: under COLLATE "C" (byte order, which UTF-8 keeps in code
# point order) every word starting with a prefix p sorts below p || chr(this).
_MAX_CODE_POINT: Final = 0x10FFFF
WALK_ROWS_PER_ITEM: Final = 20
"""A search walks at most this many rows per item of its page before it reads its
matches through the GIN index instead (a word in fewer than 1 row in this many)."""
# A search is an AND of word prefixes; more words than this add cost, not precision.
_MAX_SEARCH_WORDS: Final = 16
# Words are cut to this length: still a valid prefix, far below tsquery's 2 KiB lexeme cap.
_MAX_WORD_CHARS: Final = 64
# Anything that is not a letter or digit separates words. This removes every tsquery
# operator (& | ! ( ) : * < -> \ and quotes), NUL bytes and control characters, so the
# text handed to to_tsquery() is only `word:* & word:*`: no user input can make it fail.
_WORD_RE: Final = re.compile(r"[^\W_]+", re.UNICODE)
# The search as a tsquery, computed once per statement: a scalar subquery is an InitPlan,
# whereas a plain to_tsquery(:tsq) in a generic plan is parsed again for every row tested.
TSQUERY: Final = "(SELECT to_tsquery('simple', :tsq))"

_COLS = (
    "id, owner_id, title, platform, tags, status, hook, script, caption, hashtags, "
    "source_draft_id, source_variant_id, idempotency_key, created_at, updated_at, version, "
    "deleted_at"
)
# Live reads repeat this predicate literally so the planner uses the partial indexes of
# migrations/0002_lifecycle.sql; deleted rows cost live reads nothing.
_LIVE = "deleted_at IS NULL"
_DELETED = "deleted_at IS NOT NULL"

# Columns a PATCH may change, each with the SQL expression that casts its parameter.
# Only these names are ever interpolated into SQL (values always travel as parameters).
_UPDATABLE: Final[dict[str, str]] = {
    "title": ":title",
    "tags": "CAST(:tags AS text[])",
    "status": ":status",
    "hook": ":hook",
    "script": ":script",
    "caption": ":caption",
    "hashtags": "CAST(:hashtags AS text[])",
}


def search_words(q: str | None) -> builtins.list[str]:
    """The distinct lower-cased words of a user's search, in order (at most 16, each cut to
    64 characters); empty when ``q`` holds no letters or digits."""
    if not q:
        return []
    words = [w[:_MAX_WORD_CHARS] for w in _WORD_RE.findall(q.lower())][:_MAX_SEARCH_WORDS]
    return builtins.list(dict.fromkeys(words))


def unsearchable(q: str | None) -> bool:
    """True for a search that holds no word (``'``, an emoji, punctuation): it matches
    nothing. An absent or blank ``q`` is no search at all."""
    return bool(q and q.strip()) and not search_words(q)


def search_query(q: str | None) -> str | None:
    """The tsquery text for a user's search: each word a lower-cased prefix, AND-ed.

    None when ``q`` holds no letters or digits: nothing to search for, no filter.
    """
    return _tsquery(search_words(q))


def _tsquery(words: builtins.list[str]) -> str | None:
    return " & ".join(f"{w}:*" for w in words) if words else None


def _check_version(version: int, expected: Collection[int] | None) -> None:
    if expected is not None and version not in expected:
        raise PreconditionFailed("If-Match does not match the asset's ETag.")


def _asset(row: list[Any]) -> Asset:
    return Asset(
        id=row[0],
        owner_id=row[1],
        title=row[2],
        platform=Platform(row[3]),
        tags=tuple(row[4] or ()),
        status=AssetStatus(row[5]),
        content=VariantContent(row[6], row[7], row[8], tuple(row[9] or ())),
        source_draft_id=row[10],
        source_variant_id=row[11],
        idempotency_key=row[12],
        created_at=row[13],
        updated_at=row[14],
        version=row[15],
        deleted_at=row[16],
    )


class PgAssets:
    def __init__(self, session: Session) -> None:
        self._s = session

    def create(
        self,
        owner_id: str,
        *,
        title: str,
        platform: Platform,
        tags: Sequence[str],
        status: AssetStatus,
        content: VariantContent,
        source_draft_id: UUID | None,
        source_variant_id: UUID | None,
        idempotency_key: str | None,
        request_fingerprint: str | None = None,
    ) -> Asset:
        """Save an asset; ``IdempotencyConflict`` if (owner, key) already saved one.

        The transaction stays usable after the conflict: ``find_by_idempotency`` returns
        the stored asset to replay.
        """
        rows = self._s.run(
            f"""
            INSERT INTO assets (id, owner_id, title, platform, tags, status, hook, script,
                caption, hashtags, source_draft_id, source_variant_id, idempotency_key,
                request_fingerprint)
            VALUES (CAST(:id AS uuid), :owner, :title, :platform, CAST(:tags AS text[]),
                :status, :hook, :script, :caption, CAST(:hashtags AS text[]),
                CAST(:draft AS uuid), CAST(:variant AS uuid), :key, :fp)
            ON CONFLICT ON CONSTRAINT assets_idempotency_key DO NOTHING
            RETURNING {_COLS}
            """,
            id=str(uuid4()),
            owner=owner_id,
            title=title,
            platform=Platform(platform).value,
            tags=list(tags),
            status=AssetStatus(status).value,
            hook=content.hook,
            script=content.script,
            caption=content.caption,
            hashtags=list(content.hashtags),
            draft=str(source_draft_id) if source_draft_id else None,
            variant=str(source_variant_id) if source_variant_id else None,
            key=idempotency_key,
            fp=request_fingerprint if idempotency_key else None,
        )
        if not rows:
            raise IdempotencyConflict(owner_id, "library_assets", idempotency_key or "")
        return _asset(rows[0])

    def get(self, owner_id: str, asset_id: UUID) -> Asset | None:
        """The live asset if it belongs to ``owner_id`` (deleted ones look missing)."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM assets "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_LIVE}",
            id=str(asset_id),
            o=owner_id,
        )
        return _asset(rows[0]) if rows else None

    def update(
        self,
        owner_id: str,
        asset_id: UUID,
        changes: Mapping[str, object],
        expected_version: Collection[int] | None,
    ) -> Asset:
        """Apply ``changes`` (column names of ``_UPDATABLE``) and bump the version.

        Raises ``NotFound`` (missing, deleted or not yours) or ``PreconditionFailed``
        (the version is not in ``expected_version``). The row is locked first, so two
        PATCHes carrying the same If-Match cannot both win: the second sees the bumped
        version and gets 412.
        """
        unknown = set(changes) - set(_UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable asset fields: {sorted(unknown)}")
        rows = self._s.run(
            f"SELECT {_COLS} FROM assets "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_LIVE} FOR UPDATE",
            id=str(asset_id),
            o=owner_id,
        )
        if not rows:
            raise NotFound("Asset not found.")
        current = _asset(rows[0])
        _check_version(current.version, expected_version)
        if not changes:
            return current
        assignments = ", ".join(f"{name} = {_UPDATABLE[name]}" for name in sorted(changes))
        rows = self._s.run(
            f"UPDATE assets SET {assignments}, version = version + 1, updated_at = now() "
            f"WHERE id = CAST(:asset_id AS uuid) RETURNING {_COLS}",
            asset_id=str(asset_id),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()},
        )
        return _asset(rows[0])

    def soft_delete(
        self,
        owner_id: str,
        asset_id: UUID,
        now: datetime,
        expected_version: Collection[int] | None = None,
    ) -> bool:
        """Mark the live asset deleted; False when missing, deleted already or not yours;
        ``PreconditionFailed`` when its version is not in ``expected_version``."""
        if expected_version is not None:
            current = self._locked(owner_id, asset_id, _LIVE)
            if current is None:
                return False
            _check_version(current.version, expected_version)
        rows = self._s.run(
            "UPDATE assets SET deleted_at = CAST(:now AS timestamptz) "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_LIVE} RETURNING id",
            id=str(asset_id),
            o=owner_id,
            now=now,
        )
        return bool(rows)

    def restore(
        self,
        owner_id: str,
        asset_id: UUID,
        deleted_after: datetime,
        expected_version: Collection[int] | None = None,
    ) -> Asset | None:
        """Bring back an asset deleted after ``deleted_after``; the asset, or None.

        Idempotent: restoring a live asset returns it unchanged. Two restores at once
        both get the asset; the conditional UPDATE lets exactly one of them change it
        (one version bump). ``PreconditionFailed`` when the asset's version (deleted or
        live) is not in ``expected_version``.
        """
        if expected_version is not None:
            current = self._locked(owner_id, asset_id, "TRUE")
            if current is not None:
                _check_version(current.version, expected_version)
        rows = self._s.run(
            "UPDATE assets SET deleted_at = NULL, version = version + 1, updated_at = now() "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {_DELETED} "
            f"AND deleted_at >= CAST(:after AS timestamptz) RETURNING {_COLS}",
            id=str(asset_id),
            o=owner_id,
            after=deleted_after,
        )
        if rows:
            return _asset(rows[0])
        return self.get(owner_id, asset_id)

    def export_page(
        self, owner_id: str, *, deleted: bool, after: Keyset | None, limit: int
    ) -> builtins.list[Asset]:
        """The owner's live (or deleted) assets newest first, after ``after`` (the export)."""
        where = f"owner_id = :o AND {_DELETED if deleted else _LIVE}"
        params: dict[str, Any] = {"o": owner_id, "n": limit}
        if after is not None:
            condition, bound = keyset_after(after)
            where += f" AND {condition}"
            params |= bound
        rows = self._s.run(
            f"SELECT {_COLS} FROM assets WHERE {where} "
            "ORDER BY created_at DESC, id DESC LIMIT CAST(:n AS int)",
            **params,
        )
        return [_asset(r) for r in rows]

    def purge_deleted(self, deleted_before: datetime, limit: int) -> int:
        """Hard-delete up to ``limit`` assets soft-deleted before ``deleted_before``."""
        rows = self._s.run(
            "DELETE FROM assets WHERE id IN (SELECT id FROM assets "
            f"WHERE {_DELETED} AND deleted_at < CAST(:cutoff AS timestamptz) "
            "ORDER BY deleted_at LIMIT CAST(:n AS int)) RETURNING id",
            cutoff=deleted_before,
            n=limit,
        )
        return len(rows)

    def find_by_idempotency(self, owner_id: str, key: str, fingerprint: str) -> Asset | None:
        """The asset saved with ``key`` by the request whose body has ``fingerprint``;
        None when the key was saved by another request (or before fingerprints were kept)."""
        rows = self._s.run(
            f"SELECT {_COLS} FROM assets WHERE owner_id = :o AND idempotency_key = :k "
            "AND request_fingerprint = :fp",
            o=owner_id,
            k=key,
            fp=fingerprint,
        )
        return _asset(rows[0]) if rows else None

    def _locked(self, owner_id: str, asset_id: UUID, state: str) -> Asset | None:
        rows = self._s.run(
            f"SELECT {_COLS} FROM assets "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {state} FOR UPDATE",
            id=str(asset_id),
            o=owner_id,
        )
        return _asset(rows[0]) if rows else None

    def list(
        self,
        owner_id: str,
        *,
        platform: Platform | None = None,
        status: AssetStatus | None = None,
        tags: Sequence[str] = (),
        q: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        cursor_secret: str,
        deleted_after: datetime | None = None,
    ) -> AssetPage:
        """One page of the owner's assets, newest first (keyset on created_at, id).

        ``tags`` must all be present; ``q`` matches words by prefix, case-insensitively,
        in title, hook, script and caption. ``cursor`` must come from a previous page of
        the same owner and filters, else ``BadRequest(INVALID_CURSOR)``. With
        ``deleted_after``, lists instead the deleted assets still restorable (deleted
        after that moment).
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValidationFailed.field(["limit"], f"Must be between 1 and {MAX_PAGE_SIZE}.")
        wanted_tags = sorted(set(tags))
        binding: dict[str, object] = {
            "platform": Platform(platform).value if platform else None,
            "status": AssetStatus(status).value if status else None,
            "tags": wanted_tags,
            "q": q or None,
        }
        if deleted_after is not None:
            # Only then: live-listing cursors issued before this flag existed stay valid.
            binding["deleted"] = True
        after = (
            decode_cursor(cursor, owner_id=owner_id, filters=binding, secret=cursor_secret)
            if cursor
            else None
        )
        sql, params = _list_sql(owner_id, binding, after, limit, deleted_after)
        items = [_asset(r) for r in self._s.run(sql, **params)]
        if len(items) <= limit:
            return AssetPage(tuple(items), None)
        last = items[limit - 1]
        token = encode_cursor(
            Keyset(last.created_at, last.id),
            owner_id=owner_id,
            filters=binding,
            secret=cursor_secret,
        )
        return AssetPage(tuple(items[:limit]), token)


def _list_sql(
    owner_id: str,
    binding: dict[str, Any],
    after: Keyset | None,
    limit: int,
    deleted_after: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """The listing query for the filters of ``binding`` (platform, status, tags, q): ONE
    statement, fixed SQL fragments only, every value a parameter.

    A live page filtered by a tag or a word is read through ``asset_terms``
    (``_terms_sql``); any other page scans the newest-first indexes (``_scan_sql``).
    """
    words = search_words(binding["q"])
    if deleted_after is not None or not (binding["tags"] or words):
        return _scan_sql(owner_id, binding, words, after, limit, deleted_after)
    return _terms_sql(owner_id, binding, words, after, limit)


def _filters(
    binding: dict[str, Any], words: builtins.list[str], alias: str = ""
) -> tuple[builtins.list[str], builtins.list[str], dict[str, Any]]:
    """(conditions an ordered index serves: platform, status; conditions tested on each
    row: tags, words; their parameters) for the filters of ``binding``."""
    ordered: builtins.list[str] = []
    tested: builtins.list[str] = []
    params: dict[str, Any] = {}
    for column in ("platform", "status"):
        if binding[column]:
            ordered.append(f"{alias}{column} = :{column}")
            params[column] = binding[column]
    if binding["tags"]:
        tested.append(f"{alias}tags @> CAST(:tags AS text[])")
        params["tags"] = binding["tags"]
    tsquery = _tsquery(words)
    if tsquery:
        tested.append(f"{alias}search @@ {TSQUERY}")
        params["tsq"] = tsquery
    return ordered, tested, params


def _terms_sql(
    owner_id: str,
    binding: dict[str, Any],
    words: builtins.list[str],
    after: Keyset | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """A live page with tags or words, read newest first through ``asset_terms``.

    One term drives the page: each tag and each searched word is a candidate, and with
    several the one with the fewest matches wins (each counted up to
    ``DRIVER_COUNT_CAP``, index-only; past the cap, the one whose last counted match is
    oldest: for a word covering several, that reads its last words first, an estimate).
    A tag is one term; a word is a prefix, so the words it covers are enumerated by a
    skip scan of the (owner, term) index. Each of those terms yields its matches newest
    first (an ordered index scan, stopped at a page), every match is looked up by
    primary key and tested against all the filters, and the streams are merged. An
    asset under two covered words comes out once.

    A prefix covering more than ``MAX_PREFIX_TERMS`` words (one or two letters) matches
    too many rows for that: the page then comes from ``_scan_sql``'s walk, which such a
    word fills quickly. Each branch is gated by a one-time filter, so only one runs.
    """
    tags = binding["tags"]
    ordered, tested, params = _filters(binding, words, alias="a.")
    tested = ["a.deleted_at IS NULL", *ordered, *tested]
    params |= {
        "owner": owner_id,
        "n": limit + 1,
        "driver_tags": tags,
        "driver_words": " ".join(words),
    }
    stream = "t.owner_id = :owner AND t.term = c.term"
    if binding["platform"]:
        stream += " AND t.platform = :platform"  # in the index: no asset read to skip one
    if after:
        condition, bound = keyset_after(after, columns="t.created_at, t.asset_id")
        stream += f" AND {condition}"
        params |= bound
    # The rarest candidate first: the fewest matches (counted up to the cap), then, among
    # those past the cap, the one whose newest matches reach furthest back (the sparsest
    # near the top of the page order). Skipped when there is one candidate.
    rank = (
        f"""CROSS JOIN LATERAL (
                SELECT count(*), min(x.created_at) FROM (
                    SELECT x.created_at FROM asset_terms x
                    WHERE x.owner_id = :owner AND x.term >= k.lo AND x.term < k.hi
                    ORDER BY x.term DESC, x.created_at DESC LIMIT {DRIVER_COUNT_CAP}) x
            ) AS r (matches, reach)
            ORDER BY r.matches, r.reach, length(k.lo) DESC"""
        if len(tags) + len(words) > 1
        else ""
    )
    gate, fallback = "", ""
    if words:
        scan, scan_params = _scan_sql(owner_id, binding, words, after, limit)
        params |= scan_params
        gate = f"AND (SELECT count(term) FROM c) <= {MAX_PREFIX_TERMS}"
        fallback = (
            f"UNION ALL (SELECT * FROM ({scan}) o "
            f"WHERE (SELECT count(term) FROM c) > {MAX_PREFIX_TERMS})"
        )
    a_cols = ", ".join(f"a.{c.strip()}" for c in _COLS.split(","))
    sql = f"""
        WITH RECURSIVE d AS (
            SELECT k.lo, k.hi FROM (
                SELECT '#' || t, '#' || t || chr(1)
                FROM unnest(CAST(:driver_tags AS text[])) AS t
                UNION ALL
                SELECT w, w || chr({_MAX_CODE_POINT})
                FROM unnest(tsvector_to_array(to_tsvector('simple', :driver_words))) AS w
            ) AS k (lo, hi) {rank} LIMIT 1
        ), c (term, hi, k) AS (
            SELECT (SELECT min(x.term) FROM asset_terms x
                    WHERE x.owner_id = :owner AND x.term >= d.lo AND x.term < d.hi), d.hi, 1
            FROM d
            UNION ALL
            SELECT (SELECT min(x.term) FROM asset_terms x
                    WHERE x.owner_id = :owner AND x.term > c.term AND x.term < c.hi),
                c.hi, c.k + 1
            FROM c WHERE c.term IS NOT NULL AND c.k <= {MAX_PREFIX_TERMS}
        )
        (SELECT {a_cols} FROM (
            SELECT DISTINCT ON (s.created_at, s.asset_id) s.created_at, s.asset_id
            FROM c CROSS JOIN LATERAL (
                SELECT t.created_at, t.asset_id FROM asset_terms t CROSS JOIN LATERAL (
                    SELECT FROM assets a
                    WHERE a.id = t.asset_id AND {" AND ".join(tested)} OFFSET 0) a
                WHERE {stream}
                ORDER BY t.created_at DESC, t.asset_id DESC LIMIT CAST(:n AS int)) s
            WHERE c.term IS NOT NULL AND c.k <= {MAX_PREFIX_TERMS} {gate}
            ORDER BY s.created_at DESC, s.asset_id DESC LIMIT CAST(:n AS int)
        ) m CROSS JOIN LATERAL (SELECT * FROM assets a WHERE a.id = m.asset_id OFFSET 0) a
        ORDER BY m.created_at DESC, m.asset_id DESC)
        {fallback}
    """
    return sql, params


def _scan_sql(
    owner_id: str,
    binding: dict[str, Any],
    words: builtins.list[str],
    after: Keyset | None,
    limit: int,
    deleted_after: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """The listing by a scan of the newest-first indexes: fixed SQL fragments only, every
    value a parameter. Serves pages without a tag or word (and the deleted listing), and
    a word prefix that covers more than ``MAX_PREFIX_TERMS`` words.

    Without ``q`` the planner chooses well: platform and status have ordered indexes of
    their own and tags have statistics. Prefix searches (``word:*``) have no estimate,
    so a search picks its plan inside the statement instead. First it walks the
    newest-first index lazily, testing each row, and stops at a page of matches or after
    ``WALK_ROWS_PER_ITEM`` rows per item (a common word fills its page within a few
    rows per item). Only when the walk stopped at that cap with the page short (a rare
    or absent word) does the fallback run: the matches are read through the GIN index
    and sorted. The fallback is gated by a one-time filter (an InitPlan), so a page
    that the walk filled never touches the GIN index.
    """
    filtered, tested, params = _filters(binding, words)
    ordered = ["owner_id = :owner"]
    params |= {"owner": owner_id, "n": limit + 1}
    if deleted_after is None:
        ordered.append(_LIVE)
    else:
        ordered += [_DELETED, "deleted_at >= CAST(:deleted_after AS timestamptz)"]
        params["deleted_after"] = deleted_after
    ordered += filtered
    if after:
        condition, bound = keyset_after(after)
        ordered.append(condition)
        params |= bound
    order = "ORDER BY created_at DESC, id DESC LIMIT CAST(:n AS int)"
    if not words:
        cond = " AND ".join(ordered + tested)
        return f"SELECT {_COLS} FROM assets WHERE {cond} {order}", params
    params["walk"] = WALK_ROWS_PER_ITEM * (limit + 1)
    walked = " AND ".join(ordered)
    test = " AND ".join(tested)
    cond = " AND ".join(ordered + tested)
    # The walk numbers the rows it reads; the row at the cap comes out even when it does
    # not match, so the walk itself says whether it was cut short (no second scan).
    sql = f"""
        WITH w AS MATERIALIZED (
            SELECT * FROM (
                SELECT *, {test} AS hit_, row_number() OVER () AS rn_ FROM (
                    SELECT {_COLS}, search FROM assets WHERE {walked}
                    ORDER BY created_at DESC, id DESC LIMIT CAST(:walk AS int)) s
                ) r WHERE hit_ OR rn_ = CAST(:walk AS int) LIMIT CAST(:n AS int)
        ), f AS (
            SELECT count(*) FILTER (WHERE hit_) < CAST(:n AS int)
                AND bool_or(rn_ = CAST(:walk AS int)) IS TRUE AS gin FROM w
        )
        (SELECT {_COLS} FROM w WHERE hit_ AND NOT (SELECT gin FROM f) {order})
        UNION ALL
        (SELECT * FROM (SELECT {_COLS} FROM assets WHERE {cond} AND (SELECT gin FROM f)
            OFFSET 0) m {order})
    """
    return sql, params
