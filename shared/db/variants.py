"""The variants generated for drafts: stored once per (generation, index), read back."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from shared.db.models import NewVariant, Variant, VariantContent
from shared.db.session import Session

__all__ = ["PgVariants", "variant_rows"]

_VARIANT_COLS = (
    "id, generation_id, draft_id, index, hook, script, caption, hashtags, "
    "source_variant_id, created_at"
)


def _variant(row: list[Any]) -> Variant:
    return Variant(
        id=row[0],
        generation_id=row[1],
        draft_id=row[2],
        index=row[3],
        content=VariantContent(row[4], row[5], row[6], tuple(row[7] or ())),
        source_variant_id=row[8],
        created_at=row[9],
    )


def variant_rows(contents: Sequence[NewVariant]) -> str:
    """New variants as the JSON array the inserts read with ``jsonb_to_recordset``."""
    return json.dumps(
        [
            {
                "id": str(uuid4()),
                "index": v.index,
                "hook": v.content.hook,
                "script": v.content.script,
                "caption": v.content.caption,
                "hashtags": list(v.content.hashtags),
                "source_variant_id": str(v.source_variant_id) if v.source_variant_id else None,
            }
            for v in contents
        ]
    )


class PgVariants:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_many(
        self, generation_id: UUID, draft_id: UUID, contents: Sequence[NewVariant]
    ) -> list[Variant]:
        """Store variants idempotently; returns every variant the generation now has.

        One statement; a redelivered job inserting the same (generation, index) again
        changes nothing (ON CONFLICT DO NOTHING) and gets the stored rows back.
        """
        if contents:
            payload = variant_rows(contents)
            self._s.run(
                """
                INSERT INTO variants (id, generation_id, draft_id, index, hook, script,
                    caption, hashtags, source_variant_id)
                SELECT x.id, CAST(:g AS uuid), CAST(:d AS uuid), x.index, x.hook, x.script,
                       x.caption,
                       ARRAY(SELECT jsonb_array_elements_text(x.hashtags)),
                       x.source_variant_id
                FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
                    id uuid, index int, hook text, script text, caption text,
                    hashtags jsonb, source_variant_id uuid)
                ON CONFLICT ON CONSTRAINT variants_generation_index_key DO NOTHING
                """,
                g=str(generation_id),
                d=str(draft_id),
                rows=payload,
            )
        return self.list_for_generation(generation_id)

    def list_for_generation(self, generation_id: UUID) -> list[Variant]:
        """The generation's variants by index."""
        rows = self._s.run(
            f"SELECT {_VARIANT_COLS} FROM variants WHERE generation_id = CAST(:g AS uuid) "
            "ORDER BY index",
            g=str(generation_id),
        )
        return [_variant(r) for r in rows]

    def get_for_draft(self, draft_id: UUID, variant_id: UUID) -> Variant | None:
        """The variant if it belongs to ``draft_id``."""
        rows = self._s.run(
            f"SELECT {_VARIANT_COLS} FROM variants "
            "WHERE id = CAST(:v AS uuid) AND draft_id = CAST(:d AS uuid)",
            v=str(variant_id),
            d=str(draft_id),
        )
        return _variant(rows[0]) if rows else None

    def get_owned(self, owner_id: str, variant_id: UUID) -> Variant | None:
        """The variant if its draft belongs to ``owner_id``."""
        rows = self._s.run(
            f"SELECT {', '.join('v.' + c for c in _VARIANT_COLS.split(', '))} "
            "FROM variants v JOIN drafts d ON d.id = v.draft_id "
            "WHERE v.id = CAST(:v AS uuid) AND d.owner_id = :o AND d.deleted_at IS NULL",
            v=str(variant_id),
            o=owner_id,
        )
        return _variant(rows[0]) if rows else None

    def for_drafts(self, draft_ids: Sequence[UUID]) -> list[Variant]:
        """Every variant of these drafts (the export reads a page of drafts at a time)."""
        if not draft_ids:
            return []
        rows = self._s.run(
            f"SELECT {_VARIANT_COLS} FROM variants "
            "WHERE draft_id = ANY(CAST(:ids AS uuid[])) ORDER BY generation_id, index",
            ids=[str(d) for d in draft_ids],
        )
        return [_variant(r) for r in rows]
