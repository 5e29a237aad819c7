"""The library: saved assets (create, read, PATCH, soft delete, restore, purge, list).

The search and the listing statement are ``asset_queries``."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from uuid import UUID, uuid4

from shared.db.asset_queries import ASSET_COLS, ASSET_DELETED, ASSET_LIVE, list_sql
from shared.db.cursor import Keyset, decode_cursor, encode_cursor, keyset_after
from shared.db.errors import IdempotencyConflict
from shared.db.models import Asset, AssetPage, AssetStatus, Platform, VariantContent
from shared.db.session import Session
from shared.errors import NotFound, PreconditionFailed, ValidationFailed

__all__ = ["MAX_PAGE_SIZE", "PgAssets"]

MAX_PAGE_SIZE: Final = 100
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
            RETURNING {ASSET_COLS}
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
            f"SELECT {ASSET_COLS} FROM assets "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {ASSET_LIVE}",
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
            f"SELECT {ASSET_COLS} FROM assets "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {ASSET_LIVE} FOR UPDATE",
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
            f"WHERE id = CAST(:asset_id AS uuid) RETURNING {ASSET_COLS}",
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
            current = self._locked(owner_id, asset_id, ASSET_LIVE)
            if current is None:
                return False
            _check_version(current.version, expected_version)
        rows = self._s.run(
            "UPDATE assets SET deleted_at = CAST(:now AS timestamptz) "
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {ASSET_LIVE} RETURNING id",
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
            f"WHERE id = CAST(:id AS uuid) AND owner_id = :o AND {ASSET_DELETED} "
            f"AND deleted_at >= CAST(:after AS timestamptz) RETURNING {ASSET_COLS}",
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
        where = f"owner_id = :o AND {ASSET_DELETED if deleted else ASSET_LIVE}"
        params: dict[str, Any] = {"o": owner_id, "n": limit}
        if after is not None:
            condition, bound = keyset_after(after)
            where += f" AND {condition}"
            params |= bound
        rows = self._s.run(
            f"SELECT {ASSET_COLS} FROM assets WHERE {where} "
            "ORDER BY created_at DESC, id DESC LIMIT CAST(:n AS int)",
            **params,
        )
        return [_asset(r) for r in rows]

    def purge_deleted(self, deleted_before: datetime, limit: int) -> int:
        """Hard-delete up to ``limit`` assets soft-deleted before ``deleted_before``."""
        rows = self._s.run(
            "DELETE FROM assets WHERE id IN (SELECT id FROM assets "
            f"WHERE {ASSET_DELETED} AND deleted_at < CAST(:cutoff AS timestamptz) "
            "ORDER BY deleted_at LIMIT CAST(:n AS int)) RETURNING id",
            cutoff=deleted_before,
            n=limit,
        )
        return len(rows)

    def find_by_idempotency(self, owner_id: str, key: str, fingerprint: str) -> Asset | None:
        """The asset saved with ``key`` by the request whose body has ``fingerprint``;
        None when the key was saved by another request (or before fingerprints were kept)."""
        rows = self._s.run(
            f"SELECT {ASSET_COLS} FROM assets WHERE owner_id = :o AND idempotency_key = :k "
            "AND request_fingerprint = :fp",
            o=owner_id,
            k=key,
            fp=fingerprint,
        )
        return _asset(rows[0]) if rows else None

    def _locked(self, owner_id: str, asset_id: UUID, state: str) -> Asset | None:
        rows = self._s.run(
            f"SELECT {ASSET_COLS} FROM assets "
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
        sql, params = list_sql(owner_id, binding, after, limit, deleted_after)
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
