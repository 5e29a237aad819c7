"""What the repositories return: frozen dataclasses, never rows.

The enums mirror the CHECK constraints in ``schema.sql``; their values are the strings
stored in Postgres and shown in the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from shared.plans import PlanName

__all__ = [
    "REFUNDED",
    "Asset",
    "AssetPage",
    "AssetStatus",
    "CostLine",
    "Draft",
    "DraftPage",
    "DraftSummary",
    "Generation",
    "GenerationKind",
    "GenerationStatus",
    "GenerationSummary",
    "LedgerEntry",
    "MonthUsage",
    "NewVariant",
    "Platform",
    "Subscription",
    "SubscriptionStatus",
    "User",
    "Variant",
    "VariantContent",
    "charged_sql",
]


class Platform(StrEnum):
    INSTAGRAM_REELS = "instagram_reels"
    TIKTOK = "tiktok"
    YOUTUBE_SHORTS = "youtube_shorts"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    CANCELED = "canceled"

    @property
    def grants_plan(self) -> bool:
        """Only an active or trialing subscription gives its plan (SPEC §8)."""
        return self in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)


class GenerationKind(StrEnum):
    CREATE = "create"
    REGEN_TARGETED = "regen_targeted"
    REGEN_FULL = "regen_full"


class GenerationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Nothing moves a generation out of these (the worker's delivery does nothing)."""
        return self in _TERMINAL


_TERMINAL: frozenset[GenerationStatus] = frozenset(
    {GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.CANCELLED}
)

# A failed or cancelled generation gave its unit back (to the monthly pool or to the credit
# that paid it): every count of what was charged skips them.
REFUNDED: tuple[GenerationStatus, ...] = (GenerationStatus.FAILED, GenerationStatus.CANCELLED)


def charged_sql(column: str = "status") -> str:
    """SQL true for a generation whose unit was kept (not refunded); ``column`` is its status."""
    return f"{column} NOT IN ({', '.join(repr(s.value) for s in REFUNDED)})"


class AssetStatus(StrEnum):
    DRAFT = "draft"
    READY = "ready"
    PUBLISHED = "published"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    stripe_customer_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    user_id: str
    plan: PlanName
    status: SubscriptionStatus
    stripe_subscription_id: str | None
    current_period_end: datetime | None
    source_event_created: datetime | None
    updated_at: datetime

    @property
    def grants_plan(self) -> bool:
        """Only an active or trialing subscription gives its plan (SPEC §8)."""
        return self.status.grants_plan


@dataclass(frozen=True, slots=True)
class AdmissionTruth:
    """The plan and usage counts admission reads from Postgres when Redis lacks them:
    the base plan (None without an active/trialing subscription, or when not asked
    for), the boost expiry, and each count asked for (None otherwise)."""

    base_plan: PlanName | None
    boost_expires_at: datetime | None
    month: int | None
    hour: int | None
    full: int | None
    credits: str | None = None


@dataclass(frozen=True, slots=True)
class RegenContext:
    """A draft's state as a regeneration checks it: ``variant_ok`` None when no variant
    was named; ``busy`` when a generation is queued or running."""

    variant_ok: bool | None
    busy: bool
    last_variant_count: int


@dataclass(frozen=True, slots=True)
class NewDraft:
    """A draft to insert together with its first generation (the id is the caller's)."""

    id: UUID
    title: str | None
    brief: str
    platform: Platform
    tone: str | None
    duration_seconds: int
    language: str


@dataclass(frozen=True, slots=True)
class Draft:
    id: UUID
    owner_id: str
    title: str | None
    brief: str
    platform: Platform
    tone: str | None
    duration_seconds: int
    language: str
    selected_variant_id: UUID | None
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @property
    def etag(self) -> str:
        """The strong ETag of this draft version (``If-Match`` compares against it)."""
        return f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class GenerationSummary:
    """A generation as a draft lists it."""

    id: UUID
    kind: GenerationKind
    status: GenerationStatus
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DraftSummary:
    """One item of GET /v1/drafts: the draft, its newest generation, its variant count."""

    draft: Draft
    last_generation: GenerationSummary | None
    variant_count: int


@dataclass(frozen=True, slots=True)
class DraftPage:
    """One page of drafts; ``next_cursor`` is None on the last page."""

    items: tuple[DraftSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Generation:
    id: UUID
    owner_id: str
    draft_id: UUID
    kind: GenerationKind
    status: GenerationStatus
    requested_variants: int
    params: Mapping[str, Any]
    plan: PlanName
    period_month: str
    period_hour: str
    provider: str
    model: str
    lane: str
    request_id: str
    idempotency_scope: str | None
    idempotency_key: str | None
    request_fingerprint: str | None
    error_code: str | None
    error_message: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    # The owner asked to cancel it while it ran; its worker (or the sweeper, or the
    # failure callback) ends it ``cancelled``.
    cancel_requested_at: datetime | None = None
    credit_id: UUID | None = None  # the pack or grant that paid; None = the monthly pool

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


@dataclass(frozen=True, slots=True)
class VariantContent:
    """The generated text of one variant (also what an asset stores)."""

    hook: str
    script: str
    caption: str
    hashtags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewVariant:
    """A variant to store; ``index`` is its 0-based position in the generation."""

    index: int
    content: VariantContent
    source_variant_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    id: UUID
    generation_id: UUID
    draft_id: UUID
    index: int
    content: VariantContent
    source_variant_id: UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Asset:
    id: UUID
    owner_id: str
    title: str
    platform: Platform
    tags: tuple[str, ...]
    status: AssetStatus
    content: VariantContent
    source_draft_id: UUID | None
    source_variant_id: UUID | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    deleted_at: datetime | None = None

    @property
    def etag(self) -> str:
        """The strong ETag of this asset version (``If-Match`` compares against it)."""
        return f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class AssetPage:
    """One page of the library; ``next_cursor`` is None on the last page."""

    items: tuple[Asset, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One usage-ledger row: tokens and cost of one finished generation.

    ``created_at`` is the database's ``now()`` when recorded with None (the worker);
    an explicit value (a backfill, a test with a pinned clock) is stored as given. Its
    UTC day is the row's day in the daily rollup.
    """

    generation_id: UUID
    owner_id: str
    month: str
    plan: PlanName
    kind: GenerationKind
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int
    billable: bool
    created_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class CostLine:
    """One line of the cost report: ``keys`` are the values of the requested groups
    (``YYYY-MM-DD`` for a day), in the order they were asked for."""

    keys: tuple[str, ...]
    generations: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """The ledger of one user and month (the export's usage section)."""

    month: str
    generations: int
    billable: int
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int
