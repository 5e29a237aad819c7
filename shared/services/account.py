"""The caller's whole account: export it (streamed) and delete it (SPEC §9).

Deletion order, and why:

1. Cancel the Stripe subscription first: if Stripe fails we answer 503 and nothing is
   gone yet (a deleted account that keeps billing is the worst outcome).
2. Read the Redis footprint (periods, recent drafts and Idempotency-Keys) and the live
   leases from Postgres while the rows exist; release the leases and drop the keys.
3. One transaction: record the user's Stripe customer and subscription ids as
   tombstones (a webhook arriving later for them changes nothing), delete the user row
   (drafts, generations, variants, assets, subscription and boost cascade), THEN re-key
   the ledger under a random pseudonym.
   The delete waits for a worker that is finishing a job of this user; the ledger
   UPDATE, a later statement, then sees that job's ledger row too. A worker finishing
   after the commit finds no generation to move and writes nothing (the worker's
   conditional status move comes before its inserts).
4. Drop the keys again: a request racing the deletion may have re-seeded a counter or
   the plan cache from rows that were still there.

A second call finds nothing in Postgres and only deletes keys that do not exist: 202,
no change. The pseudonym is random per deletion, so it links nothing, not even two
deletions of the same ``sub``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, Final, Protocol

from shared.billing.plans import Lane
from shared.db import (
    Asset,
    Database,
    Draft,
    Generation,
    Keyset,
    MonthUsage,
    Subscription,
    UnitOfWork,
    Variant,
)
from shared.db.credits import Credit
from shared.enforcement import Enforcer, LeaseRef
from shared.observability.logging import log_event
from shared.services.library import IDEMPOTENCY_SCOPE

__all__ = [
    "AccountDeletion",
    "AccountDeps",
    "ExportHead",
    "ExportPart",
    "ExportedAssets",
    "ExportedDraft",
    "SubscriptionCanceller",
    "delete_account",
    "export_account",
]

_log = logging.getLogger("reel.account")
# Rows per export query: memory stays flat (one page at a time), round trips stay few.
DRAFT_BATCH: Final = 200
ASSET_BATCH: Final = 500
# How far back Redis can still hold per-user keys: hourly counters (hour + grace),
# regeneration cooldowns (seconds), idempotency records (24 h) — each with slack.
_HOURS_BACK: Final = timedelta(hours=3)
_COOLDOWNS_BACK: Final = timedelta(hours=1)
_IDEMPOTENCY_BACK: Final = timedelta(hours=26)


class SubscriptionCanceller(Protocol):
    def cancel_for_deletion(self, user_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class AccountDeps:
    db: Database
    enforcer: Enforcer
    billing: SubscriptionCanceller
    now: Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ExportHead:
    """Everything of the export before its streamed arrays."""

    user_id: str
    exported_at: datetime
    created_at: datetime | None
    subscription: Subscription | None
    boost_expires_at: datetime | None
    usage: list[MonthUsage]
    credits: list[Credit] = field(default_factory=list)  # packs and grants, with their use


@dataclass(frozen=True, slots=True)
class ExportedDraft:
    """One draft with all its generations; ``variants`` is keyed by generation id."""

    draft: Draft
    generations: list[Generation]
    variants: dict[Any, list[Variant]]


@dataclass(frozen=True, slots=True)
class ExportedAssets:
    """One page of assets (the live ones first, then the deleted ones)."""

    assets: list[Asset]


ExportPart = ExportHead | ExportedDraft | ExportedAssets


@dataclass(frozen=True, slots=True)
class AccountDeletion:
    existed: bool
    stripe_cancelled: bool
    ledger_rows: int
    redis_keys: int


def _pseudonym() -> str:
    """A fresh non-reversible owner id for the ledger (matches no JWT ``sub`` we mint)."""
    return "deleted:" + secrets.token_hex(16)


def delete_account(deps: AccountDeps, user_id: str) -> AccountDeletion:
    """Delete everything of ``user_id`` (see the module docstring); idempotent."""
    cancelled = deps.billing.cancel_for_deletion(user_id)
    now = deps.now()
    with deps.db.uow() as uow:
        fp = uow.users.footprint(
            user_id,
            hours_since=now - _HOURS_BACK,
            cooldowns_since=now - _COOLDOWNS_BACK,
            idempotency_since=now - _IDEMPOTENCY_BACK,
            asset_scope=IDEMPOTENCY_SCOPE,
        )
        active = uow.generations.active_for_owner(user_id)
    keys = deps.enforcer.user_state_keys(
        user_id, now, months=fp.months, hours=fp.hours, draft_ids=fp.draft_ids,
        idempotency=fp.idempotency,
    )  # fmt: skip
    leases = [LeaseRef(str(g.id), g.owner_id, g.provider, g.model, Lane(g.lane)) for g in active]
    dropped = deps.enforcer.forget_user(keys, leases)
    with deps.db.uow() as uow:
        # Before the rows go: a late webhook for these ids must not resurrect the user.
        buried = uow.stripe_tombstones.bury_user(user_id, now)
        pseudonym = _pseudonym()
        # Before the generations go (they count what each pack or grant paid for).
        uow.credits.forfeit_owner(user_id, pseudonym)
        existed = uow.users.delete(user_id)
        moved = uow.ledger.pseudonymise(user_id, pseudonym)
        uow.commit()
    dropped += deps.enforcer.forget_user(keys, [])
    log_event(
        _log, "account_deleted", existed=existed, stripe_cancelled=cancelled,
        ledger_rows=moved, redis_keys=dropped, jobs_discarded=len(active),
        stripe_ids_buried=buried,
    )  # fmt: skip
    return AccountDeletion(existed, cancelled, moved, dropped)


def export_account(db: Database, user_id: str, now: datetime) -> Iterator[ExportPart]:
    """The account as domain parts, in document order: one ``ExportHead``, every
    ``ExportedDraft``, then ``ExportedAssets`` pages (live, then deleted). The edge
    (``shared.api.export``) turns them into the JSON document (``models.AccountExport``).

    The head is read before this returns, so an unreachable database is an ordinary 503
    rather than a broken stream. The rest is read page by page inside one read-only
    snapshot transaction, so memory stays flat however big the account is and the
    document is consistent.
    """
    parts = _export(db, user_id, now)
    first = next(parts)
    return chain((first,), parts)


def _export(db: Database, user_id: str, now: datetime) -> Iterator[ExportPart]:
    with db.uow() as uow:
        uow.snapshot()
        user = uow.users.get(user_id)
        yield ExportHead(
            user_id=user_id,
            exported_at=now,
            created_at=user.created_at if user else None,
            subscription=uow.subscriptions.get(user_id),
            boost_expires_at=uow.boosts.get_expiry(user_id),
            usage=uow.ledger.usage_by_month(user_id),
            credits=uow.credits.for_owner(user_id),
        )
        yield from _drafts(uow, user_id)
        yield from _assets(uow, user_id)


def _drafts(uow: UnitOfWork, user_id: str) -> Iterator[ExportedDraft]:
    after: Keyset | None = None
    while True:
        drafts = uow.drafts.export_page(user_id, after, DRAFT_BATCH)
        if not drafts:
            return
        ids = [d.id for d in drafts]
        generations = uow.generations.for_drafts(ids)
        by_generation: dict[Any, list[Variant]] = {}
        for v in uow.variants.for_drafts(ids):
            by_generation.setdefault(v.generation_id, []).append(v)
        by_draft: dict[Any, list[Generation]] = {}
        for g in generations:
            by_draft.setdefault(g.draft_id, []).append(g)
        for d in drafts:
            yield ExportedDraft(d, by_draft.get(d.id, []), by_generation)
        after = Keyset(drafts[-1].created_at, drafts[-1].id)


def _assets(uow: UnitOfWork, user_id: str) -> Iterator[ExportedAssets]:
    for deleted in (False, True):
        after: Keyset | None = None
        while True:
            page = uow.assets.export_page(user_id, deleted=deleted, after=after, limit=ASSET_BATCH)
            if not page:
                break
            yield ExportedAssets(page)
            after = Keyset(page[-1].created_at, page[-1].id)
