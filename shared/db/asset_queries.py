"""The library's read SQL: the assets columns, the search (a user's words as a prefix
tsquery) and the ONE statement that reads a page of a listing (``PgAssets.list``).

A live page filtered by a tag or a word is read through ``asset_terms``
(``_terms_sql``); any other page scans the newest-first indexes (``_scan_sql``).
"""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

import builtins
import re
from datetime import datetime
from typing import Any, Final

from shared.db.cursor import Keyset, keyset_after

__all__ = [
    "ASSET_COLS",
    "ASSET_DELETED",
    "ASSET_LIVE",
    "DRIVER_COUNT_CAP",
    "MAX_PREFIX_TERMS",
    "TSQUERY",
    "WALK_ROWS_PER_ITEM",
    "list_sql",
    "search_query",
    "search_words",
    "unsearchable",
]

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

ASSET_COLS = (
    "id, owner_id, title, platform, tags, status, hook, script, caption, hashtags, "
    "source_draft_id, source_variant_id, idempotency_key, created_at, updated_at, version, "
    "deleted_at"
)
# Live reads repeat this predicate literally so the planner uses the partial indexes of
# migrations/0002_lifecycle.sql; deleted rows cost live reads nothing.
ASSET_LIVE = "deleted_at IS NULL"
ASSET_DELETED = "deleted_at IS NOT NULL"


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


def list_sql(
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
    a_cols = ", ".join(f"a.{c.strip()}" for c in ASSET_COLS.split(","))
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
        ordered.append(ASSET_LIVE)
    else:
        ordered += [ASSET_DELETED, "deleted_at >= CAST(:deleted_after AS timestamptz)"]
        params["deleted_after"] = deleted_after
    ordered += filtered
    if after:
        condition, bound = keyset_after(after)
        ordered.append(condition)
        params |= bound
    order = "ORDER BY created_at DESC, id DESC LIMIT CAST(:n AS int)"
    if not words:
        cond = " AND ".join(ordered + tested)
        return f"SELECT {ASSET_COLS} FROM assets WHERE {cond} {order}", params
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
                    SELECT {ASSET_COLS}, search FROM assets WHERE {walked}
                    ORDER BY created_at DESC, id DESC LIMIT CAST(:walk AS int)) s
                ) r WHERE hit_ OR rn_ = CAST(:walk AS int) LIMIT CAST(:n AS int)
        ), f AS (
            SELECT count(*) FILTER (WHERE hit_) < CAST(:n AS int)
                AND bool_or(rn_ = CAST(:walk AS int)) IS TRUE AS gin FROM w
        )
        (SELECT {ASSET_COLS} FROM w WHERE hit_ AND NOT (SELECT gin FROM f) {order})
        UNION ALL
        (SELECT * FROM (SELECT {ASSET_COLS} FROM assets WHERE {cond} AND (SELECT gin FROM f)
            OFFSET 0) m {order})
    """
    return sql, params
