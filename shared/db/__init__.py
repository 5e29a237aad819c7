"""Postgres access: the pool, the unit of work, repositories, models and cursors.

Services use ``Database.uow()`` and the repositories on the ``UnitOfWork``; SQL lives
only in this package. Migrations: ``python -m shared.db.migrate`` (``shared.db.migrate.migrate``),
kept out of this namespace so ``-m`` runs it cleanly. See ``shared/db/README.md``.
"""

from shared.db.cursor import Keyset, decode_cursor, encode_cursor
from shared.db.database import Database, UnitOfWork
from shared.db.errors import (
    DraftBusy,
    ForeignKeyViolation,
    IdempotencyConflict,
    OwnerGone,
    UniqueViolation,
)
from shared.db.models import (
    AdmissionTruth,
    Asset,
    AssetPage,
    AssetStatus,
    CostLine,
    Draft,
    DraftPage,
    DraftSummary,
    Generation,
    GenerationKind,
    GenerationStatus,
    GenerationSummary,
    LedgerEntry,
    MonthUsage,
    NewDraft,
    NewVariant,
    Platform,
    RegenContext,
    Subscription,
    SubscriptionStatus,
    User,
    Variant,
    VariantContent,
)

__all__ = [
    "AdmissionTruth",
    "Asset",
    "AssetPage",
    "AssetStatus",
    "CostLine",
    "Database",
    "Draft",
    "DraftBusy",
    "DraftPage",
    "DraftSummary",
    "ForeignKeyViolation",
    "Generation",
    "GenerationKind",
    "GenerationStatus",
    "GenerationSummary",
    "IdempotencyConflict",
    "Keyset",
    "LedgerEntry",
    "MonthUsage",
    "NewDraft",
    "NewVariant",
    "OwnerGone",
    "Platform",
    "RegenContext",
    "Subscription",
    "SubscriptionStatus",
    "UniqueViolation",
    "UnitOfWork",
    "User",
    "Variant",
    "VariantContent",
    "decode_cursor",
    "encode_cursor",
]
