"""Opaque, tamper-evident keyset cursors for the library listing.

A cursor is URL-safe base64 (no padding) of::

    version (1 byte) | created_at as µs since the epoch (8 bytes, signed) | id (16 bytes)
    | HMAC-SHA256 tag, first 16 bytes

The tag covers the position *and* the owner and the filters the page was listed with, so
a cursor edited by hand, minted for another user, or replayed with different filters is
rejected with ``BadRequest(code="INVALID_CURSOR")`` instead of silently paging wrong.
Cursors carry no secret data; the tag only makes them unforgeable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from shared.errors import BadRequest

__all__ = ["Keyset", "decode_cursor", "encode_cursor", "invalid_cursor", "keyset_after"]

_VERSION = 1
_BODY = struct.Struct(">Bq16s")
# 128-bit tag: forging needs ~2^128 tries, and the cursor stays short (55 chars).
_TAG_BYTES = 16
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOMAIN = b"reel-content/library-cursor/v1"


@dataclass(frozen=True, slots=True)
class Keyset:
    """A position in ``ORDER BY created_at DESC, id DESC``: the last row of a page."""

    created_at: datetime
    id: UUID


def keyset_after(
    after: Keyset, *, newest_first: bool = True, columns: str = "created_at, id"
) -> tuple[str, dict[str, object]]:
    """The SQL condition (and its parameters) for rows past ``after`` in keyset order.

    A plain row comparison (no "IS NULL OR"), so it is an index condition that matches
    the ``(created_at, id)`` index order exactly, in either direction. ``columns`` names
    the pair where it is spelled otherwise (a constant of the caller, never input).
    """
    op = "<" if newest_first else ">"
    condition = f"({columns}) {op} (CAST(:after_t AS timestamptz), CAST(:after_id AS uuid))"
    return condition, {"after_t": after.created_at, "after_id": str(after.id)}


def invalid_cursor() -> BadRequest:
    return BadRequest("The cursor is invalid or does not match this query.", code="INVALID_CURSOR")


def encode_cursor(
    position: Keyset, *, owner_id: str, filters: Mapping[str, object], secret: str
) -> str:
    """The cursor for ``position``, bound to ``owner_id`` and ``filters`` (JSON values)."""
    body = _BODY.pack(_VERSION, _micros(position.created_at), position.id.bytes)
    token = body + _tag(body, owner_id, filters, secret)
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def decode_cursor(
    cursor: str, *, owner_id: str, filters: Mapping[str, object], secret: str
) -> Keyset:
    """The position in ``cursor``; raises ``BadRequest(INVALID_CURSOR)`` for anything else."""
    if not isinstance(cursor, str) or not _TOKEN_RE.match(cursor):
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError as exc:
        raise invalid_cursor() from exc
    body, tag = raw[: _BODY.size], raw[_BODY.size :]
    if len(raw) != _BODY.size + _TAG_BYTES:
        raise invalid_cursor()
    if not hmac.compare_digest(tag, _tag(body, owner_id, filters, secret)):
        raise invalid_cursor()
    version, micros, id_bytes = _BODY.unpack(body)
    if version != _VERSION:
        raise invalid_cursor()
    try:
        created_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise invalid_cursor() from exc
    return Keyset(created_at, UUID(bytes=id_bytes))


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("cursor timestamps must be timezone-aware")
    # Integer arithmetic on the timedelta: exact to the microsecond (Postgres precision).
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _tag(body: bytes, owner_id: str, filters: Mapping[str, object], secret: str) -> bytes:
    if not secret:
        raise ValueError("a cursor secret is required")
    binding = json.dumps(
        {"owner": owner_id, "filters": dict(filters)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    message = b"\0".join((_DOMAIN, binding, body))
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()[:_TAG_BYTES]
