"""Domain objects as the SPEC's JSON shapes (one place, shared by handlers and replays).

Presentation, so it lives at the edge: services return domain objects and never import
this module (tests/unit/test_layers.py holds the direction).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.db import Asset, Draft, DraftSummary, Generation, MonthUsage, Variant
from shared.enforcement.scripts.usage import UsageSnapshot
from shared.enforcement.values import Meter

__all__ = [
    "asset_json",
    "draft_json",
    "draft_summary_json",
    "dump",
    "export_draft_json",
    "generation_json",
    "month_usage_json",
    "rfc3339",
    "usage_json",
]


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


def _error(gen: Generation) -> dict[str, str] | None:
    return {"code": gen.error_code, "message": gen.error_message or ""} if gen.error_code else None


def generation_json(gen: Generation, variants: list[Variant]) -> dict[str, Any]:
    error = _error(gen)
    return {
        "id": str(gen.id),
        "draft_id": str(gen.draft_id),
        "kind": gen.kind.value,
        "status": gen.status.value,
        "created_at": rfc3339(gen.created_at),
        "started_at": rfc3339(gen.started_at),
        "completed_at": rfc3339(gen.completed_at),
        "cancel_requested_at": rfc3339(gen.cancel_requested_at),
        "error": error,
        "variants": [_variant(v) for v in variants],
    }


def _draft_fields(draft: Draft) -> dict[str, Any]:
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
    }


def draft_summary_json(item: DraftSummary) -> dict[str, Any]:
    """One item of GET /v1/drafts."""
    g = item.last_generation
    last = (
        {"id": str(g.id), "kind": g.kind.value, "status": g.status.value,
         "created_at": rfc3339(g.created_at)}
        if g is not None
        else None
    )  # fmt: skip
    return {**_draft_fields(item.draft), "last_generation": last,
            "variant_count": item.variant_count}  # fmt: skip


def export_draft_json(
    draft: Draft, generations: list[Generation], variants: dict[Any, list[Variant]]
) -> dict[str, Any]:
    """A draft in the export: deleted_at, and every generation with its variants."""
    return {
        **_draft_fields(draft),
        "deleted_at": rfc3339(draft.deleted_at),
        "generations": [
            {
                "id": str(g.id),
                "kind": g.kind.value,
                "status": g.status.value,
                "requested_variants": g.requested_variants,
                "params": dict(g.params),
                "plan": g.plan.value,
                "period_month": g.period_month,
                "created_at": rfc3339(g.created_at),
                "started_at": rfc3339(g.started_at),
                "completed_at": rfc3339(g.completed_at),
                "error": _error(g),
                "variants": [_variant(v) for v in variants.get(g.id, [])],
            }
            for g in generations
        ],
    }


def month_usage_json(u: MonthUsage) -> dict[str, Any]:
    return {
        "month": u.month,
        "generations": u.generations,
        "billable": u.billable,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cost_micro_usd": u.cost_micro_usd,
    }


def draft_json(draft: Draft, generations: list[Generation]) -> dict[str, Any]:
    return {
        **_draft_fields(draft),
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
        # Only on deleted assets: live bodies (and stored idempotent replays) keep their shape.
        **({"deleted_at": rfc3339(asset.deleted_at)} if asset.deleted_at else {}),
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
        "credits": {
            "remaining": sum(c.remaining for c in u.credits),
            "items": [
                {
                    "id": c.credit_id,
                    "source": c.kind,
                    "limit": c.limit,
                    "used": c.used,
                    "remaining": c.remaining,
                    "expires_at": rfc3339(c.expires_at),
                }
                for c in u.credits
            ],
        },
    }
