"""Domain objects as the SPEC's JSON shapes (one place, shared by handlers and replays)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.db import Asset, Draft, Generation, Variant
from shared.enforcement import Meter, UsageSnapshot

__all__ = ["asset_json", "draft_json", "dump", "generation_json", "rfc3339", "usage_json"]


def dump(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _id(value: object | None) -> str | None:
    return None if value is None else str(value)


def _variant(v: Variant) -> dict[str, Any]:
    return {
        "id": str(v.id),
        "index": v.index,
        "hook": v.content.hook,
        "script": v.content.script,
        "caption": v.content.caption,
        "hashtags": list(v.content.hashtags),
        "source_variant_id": _id(v.source_variant_id),
    }


def generation_json(gen: Generation, variants: list[Variant]) -> dict[str, Any]:
    error = {"code": gen.error_code, "message": gen.error_message or ""} if gen.error_code else None
    return {
        "id": str(gen.id),
        "draft_id": str(gen.draft_id),
        "kind": gen.kind.value,
        "status": gen.status.value,
        "created_at": rfc3339(gen.created_at),
        "started_at": rfc3339(gen.started_at),
        "completed_at": rfc3339(gen.completed_at),
        "error": error,
        "variants": [_variant(v) for v in variants],
    }


def draft_json(draft: Draft, generations: list[Generation]) -> dict[str, Any]:
    return {
        "id": str(draft.id),
        "title": draft.title,
        "brief": draft.brief,
        "platform": draft.platform.value,
        "tone": draft.tone,
        "duration_seconds": draft.duration_seconds,
        "language": draft.language,
        "selected_variant_id": _id(draft.selected_variant_id),
        "created_at": rfc3339(draft.created_at),
        "updated_at": rfc3339(draft.updated_at),
        "generations": [
            {"id": str(g.id), "kind": g.kind.value, "status": g.status.value,
             "created_at": rfc3339(g.created_at)}
            for g in generations
        ],
    }  # fmt: skip


def asset_json(asset: Asset) -> dict[str, Any]:
    has_source = asset.source_draft_id or asset.source_variant_id
    return {
        "id": str(asset.id),
        "title": asset.title,
        "platform": asset.platform.value,
        "tags": list(asset.tags),
        "status": asset.status.value,
        "content": {
            "hook": asset.content.hook,
            "script": asset.content.script,
            "caption": asset.content.caption,
            "hashtags": list(asset.content.hashtags),
        },
        "source": {
            "draft_id": _id(asset.source_draft_id),
            "variant_id": _id(asset.source_variant_id),
        }
        if has_source
        else None,
        "created_at": rfc3339(asset.created_at),
        "updated_at": rfc3339(asset.updated_at),
    }


def _limit(m: Meter) -> int | None:
    return None if m.limit < 0 else m.limit


def usage_json(u: UsageSnapshot) -> dict[str, Any]:
    return {
        "plan": u.plan.value if u.plan else None,
        "effective_plan": u.effective_plan.value if u.effective_plan else None,
        "boost_expires_at": rfc3339(u.boost_expires_at),
        "period": u.period,
        "generations": {
            "used": u.generations.used,
            "limit": _limit(u.generations),
            "remaining": u.generations.remaining if u.generations.limit >= 0 else None,
            "resets_at": rfc3339(u.generations.resets_at),
        },
        "hourly": {
            "used": u.hourly.used,
            "limit": _limit(u.hourly),
            "resets_at": rfc3339(u.hourly.resets_at),
        },
        "full_regens": {"used": u.full_regens.used, "limit": _limit(u.full_regens)},
        "concurrency": {"in_use": u.concurrency.used, "limit": max(0, u.concurrency.limit)},
    }
