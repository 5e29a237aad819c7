"""Response models (pydantic v2): what the API answers, for the OpenAPI document.

Handlers serialise them (or plain dicts of the same shape, ``shared.api.render``); the
account export's models only describe the streamed document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.models.requests import AssetContent
from shared.db.models import AssetStatus, Platform

__all__ = [
    "AcceptedResponse",
    "AccountDeletionResponse",
    "AccountExport",
    "AssetListResponse",
    "AssetResponse",
    "AssetSource",
    "CostRowOut",
    "CostTotalsOut",
    "CostsResponse",
    "CreditOut",
    "DraftListItem",
    "DraftListResponse",
    "DraftResponse",
    "ErrorBody",
    "ErrorResponse",
    "ExportAsset",
    "ExportBoost",
    "ExportCredit",
    "ExportDraft",
    "ExportGeneration",
    "ExportMonthUsage",
    "ExportSubscription",
    "ExportUser",
    "GenerationError",
    "GenerationResponse",
    "GenerationStatusName",
    "GenerationSummary",
    "NoticeListResponse",
    "NoticeOut",
    "UrlResponse",
    "UsageCounter",
    "UsageCredits",
    "UsageResponse",
    "VariantOut",
]


# ---- responses -------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class AcceptedResponse(BaseModel):
    draft_id: str
    generation_id: str
    status: Literal["queued"]


class VariantOut(BaseModel):
    id: str
    index: int
    hook: str
    script: str
    caption: str
    hashtags: list[str]
    source_variant_id: str | None


GenerationStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
"""Every status a generation can have (``cancelled``: POST /v1/generations/{id}/cancel)."""


class GenerationError(BaseModel):
    code: str
    message: str


class GenerationResponse(BaseModel):
    id: str
    draft_id: str
    kind: Literal["create", "regen_targeted", "regen_full"]
    status: GenerationStatusName
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    cancel_requested_at: datetime | None = Field(
        description="when its owner asked to cancel it while it ran (it ends cancelled)"
    )
    error: GenerationError | None
    variants: list[VariantOut]


class GenerationSummary(BaseModel):
    id: str
    kind: str
    status: GenerationStatusName
    created_at: datetime


class DraftResponse(BaseModel):
    id: str
    title: str | None
    brief: str
    platform: Platform
    tone: str | None
    duration_seconds: int
    language: str
    selected_variant_id: str | None
    created_at: datetime
    updated_at: datetime
    generations: list[GenerationSummary]


class DraftListItem(BaseModel):
    id: str
    title: str | None
    brief: str
    platform: Platform
    tone: str | None
    duration_seconds: int
    language: str
    selected_variant_id: str | None
    created_at: datetime
    updated_at: datetime
    last_generation: GenerationSummary | None
    variant_count: int


class DraftListResponse(BaseModel):
    items: list[DraftListItem]
    next_cursor: str | None


class AssetSource(BaseModel):
    draft_id: str | None
    variant_id: str | None


class AssetResponse(BaseModel):
    id: str
    title: str
    platform: Platform
    tags: list[str]
    status: AssetStatus
    content: AssetContent
    source: AssetSource | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = Field(
        None, description="Present only on deleted assets (`?deleted=true`)."
    )


class AssetListResponse(BaseModel):
    items: list[AssetResponse]
    next_cursor: str | None


class UsageCounter(BaseModel):
    used: int
    limit: int | None
    remaining: int | None = None
    resets_at: datetime | None = None


class CreditOut(BaseModel):
    """A generation pack or support grant: ``limit`` units granted (less any taken away
    by a refund or reversal), ``used`` of them spent, the rest ``remaining`` until
    ``expires_at``."""

    id: str
    source: Literal["pack", "grant"]
    limit: int
    used: int
    remaining: int
    expires_at: datetime


class UsageCredits(BaseModel):
    """Packs and grants not expired, used after the monthly pool, earliest expiry first."""

    remaining: int
    items: list[CreditOut]


class NoticeOut(BaseModel):
    """A usage notice: ``kind`` pool_80 / pool_100 (the monthly pool reached that share,
    ``period`` the month) or credits_low (packs and grants fell to the low mark,
    ``period`` the credit that crossed it)."""

    id: str
    type: Literal["usage.notice"]
    user_id: str
    kind: str
    period: str
    created_at: datetime
    read: bool


class NoticeListResponse(BaseModel):
    items: list[NoticeOut]
    unread: int


class UsageResponse(BaseModel):
    plan: str | None
    effective_plan: str | None
    boost_expires_at: datetime | None
    period: str
    generations: UsageCounter
    hourly: UsageCounter
    full_regens: UsageCounter
    concurrency: dict[str, int]
    credits: UsageCredits


class CostTotalsOut(BaseModel):
    generations: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int


class CostRowOut(CostTotalsOut):
    """One group: the requested keys (only those), and ``group``, a display label joining
    them with commas (for one key, the key itself, as in the SPEC §4 form)."""

    group: str
    day: str | None = None
    user: str | None = None
    plan: str | None = None
    model: str | None = None
    source: str | None = None  # who paid: pool, pack or grant


class CostsResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    month: str | None
    group_by: str
    rolled_through: str | None
    rows: list[CostRowOut]
    totals: CostTotalsOut


class UrlResponse(BaseModel):
    url: str


class AccountDeletionResponse(BaseModel):
    status: Literal["deleted"]


# ---- GET /v1/me/export: the document's format (streamed; these models only describe it) --


class ExportUser(BaseModel):
    id: str
    created_at: datetime | None


class ExportSubscription(BaseModel):
    plan: str
    status: str
    stripe_subscription_id: str | None
    current_period_end: datetime | None
    updated_at: datetime


class ExportBoost(BaseModel):
    expires_at: datetime


class ExportMonthUsage(BaseModel):
    month: str = Field(description="YYYY-MM (UTC)")
    generations: int = Field(description="finished generations recorded in the ledger")
    billable: int = Field(description="of which charged (failed ones are refunded)")
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int


class ExportGeneration(BaseModel):
    id: str
    kind: Literal["create", "regen_targeted", "regen_full"]
    status: GenerationStatusName
    requested_variants: int
    params: dict[str, Any]
    plan: str
    period_month: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error: GenerationError | None
    variants: list[VariantOut]


class ExportDraft(BaseModel):
    id: str
    title: str | None
    brief: str
    platform: Platform
    tone: str | None
    duration_seconds: int
    language: str
    selected_variant_id: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    generations: list[ExportGeneration]


class ExportAsset(AssetResponse):
    deleted_at: datetime | None = None


class ExportCredit(BaseModel):
    """A generation pack (``pack`` names it) or support grant, with what was used of it
    and what a refund, reversal or deletion took back (``removed_units``)."""

    id: str
    source: Literal["pack", "grant"]
    pack: str | None
    units: int
    removed_units: int
    used: int
    remaining: int
    expires_at: datetime
    created_at: datetime


class AccountExport(BaseModel):
    """GET /v1/me/export: everything held about the caller, as one streamed document.

    Drafts come oldest first, each with its generations and their variants; assets
    newest first, live ones then deleted ones (``deleted_at`` set). Soft-deleted
    drafts and assets are included until the sweep purges them.
    """

    format: Literal["reel-content-export/1"]
    exported_at: datetime
    user: ExportUser
    subscription: ExportSubscription | None
    boost: ExportBoost | None
    usage: list[ExportMonthUsage]
    credits: list[ExportCredit]
    drafts: list[ExportDraft]
    assets: list[ExportAsset]
