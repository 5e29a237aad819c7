"""The account export as the JSON document of ``models.AccountExport``, streamed.

The service (``shared.services.account.export_account``) reads the account as domain
parts inside one snapshot; this module only writes them out, chunk by chunk, so memory
stays flat: the head, one chunk per draft, one per page of assets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final

from shared.api.render import asset_json, dump, export_draft_json, month_usage_json, rfc3339
from shared.db import Asset, Database
from shared.services.account import (
    ExportedAssets,
    ExportedDraft,
    ExportHead,
    ExportPart,
    export_account,
)

__all__ = ["EXPORT_FORMAT", "export_chunks", "export_document"]

EXPORT_FORMAT: Final = "reel-content-export/1"


def export_document(db: Database, user_id: str, now: datetime) -> Iterator[bytes]:
    """The export as chunks of UTF-8 JSON; the head is read before this returns (a
    database that is down is a plain 503, not a broken stream)."""
    return export_chunks(export_account(db, user_id, now))


def export_chunks(parts: Iterable[ExportPart]) -> Iterator[bytes]:
    sep = b""
    in_assets = False
    for part in parts:
        if isinstance(part, ExportHead):
            yield _head(part)
        elif isinstance(part, ExportedDraft):
            draft = export_draft_json(part.draft, part.generations, part.variants)
            yield sep + dump(draft).encode()
            sep = b","
        elif isinstance(part, ExportedAssets):
            if not in_assets:
                yield b'],"assets":['
                in_assets, sep = True, b""
            yield sep + ",".join(dump(_export_asset(a)) for a in part.assets).encode()
            sep = b","
    if not in_assets:
        yield b'],"assets":['
    yield b"]}"


def _head(head: ExportHead) -> bytes:
    sub = head.subscription
    payload: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": rfc3339(head.exported_at),
        "user": {"id": head.user_id, "created_at": rfc3339(head.created_at)},
        "subscription": {
            "plan": sub.plan.value,
            "status": sub.status.value,
            "stripe_subscription_id": sub.stripe_subscription_id,
            "current_period_end": rfc3339(sub.current_period_end),
            "updated_at": rfc3339(sub.updated_at),
        }
        if sub
        else None,
        "boost": {"expires_at": rfc3339(head.boost_expires_at)} if head.boost_expires_at else None,
        "usage": [month_usage_json(m) for m in head.usage],
        "credits": [
            {
                "id": str(c.id),
                "source": c.source,
                "pack": c.pack,
                "units": c.units,
                "removed_units": c.removed_units,
                "used": c.used,
                "remaining": c.remaining,
                "expires_at": rfc3339(c.expires_at),
                "created_at": rfc3339(c.created_at),
            }
            for c in head.credits
        ],
    }
    # The head is a complete object; reopen it to append the streamed arrays.
    return (dump(payload)[:-1] + ',"drafts":[').encode("utf-8")


def _export_asset(asset: Asset) -> dict[str, Any]:
    return {**asset_json(asset), "deleted_at": rfc3339(asset.deleted_at)}
