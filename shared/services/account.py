"""The caller's whole account: export it (streamed) and delete it (SPEC §9).

Deletion order, and why:

1. Cancel the Stripe subscription first: if Stripe fails we answer 503 and nothing is
   gone yet (a deleted account that keeps billing is the worst outcome).
2. Read the Redis footprint (periods, recent drafts and Idempotency-Keys) and the live
   leases while the rows exist; release the leases and drop the keys (so a crash after
   the commit below cannot leave the old plan cached for a new account of this sub).
3. One transaction: lock the user row (FOR UPDATE), so every create in flight has
   committed its draft and generation (a create share-locks the row) and any later one
   finds no row and writes nothing (402, its admission undone). Under that lock read the
   footprint and the queued and running generations again (locked: a worker's claim or
   terminal move waits for us, or we for it). Record the user's Stripe ids as tombstones
   (a later webhook for them changes nothing), delete the user row (drafts, generations,
   variants, assets, subscription and boost cascade), re-key the ledger under a random
   pseudonym, and give each job still running a placeholder ledger row under that
   pseudonym: its worker, finding the generation gone, writes the tokens and cost the
   provider charged into it.
4. After the commit, release and drop again, from what the lock let us see: a create
   that committed meanwhile, a counter or plan cache re-seeded from rows still there.
   A create's idempotency record dropped while pending is never stored afterwards.

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

from shared.db import (
    Asset,
    Database,
    Draft,
    Generation,
    GenerationStatus,
    Keyset,
    LedgerEntry,
    MonthUsage,
    Subscription,
    UnitOfWork,
    Variant,
)
from shared.db.credits import Credit
from shared.db.ledger import PSEUDONYM_PREFIX
from shared.enforcement import Enforcer, LeaseRef
from shared.observability.logging import log_event
from shared.plans import Lane
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
    return PSEUDONYM_PREFIX + secrets.token_hex(16)


def _placeholder(gen: Generation, pseudonym: str) -> LedgerEntry:
    """The ledger row of a job running at the deletion, under the pseudonym: zero tokens
    until its worker, finding the generation gone, writes what the provider cost."""
    return LedgerEntry(
        generation_id=gen.id, owner_id=pseudonym, month=gen.period_month, plan=gen.plan,
        kind=gen.kind, provider=gen.provider, model=gen.model, prompt_tokens=0,
        completion_tokens=0, cost_micro_usd=0, billable=False,
    )  # fmt: skip


def _redis_state(
    deps: AccountDeps, uow: UnitOfWork, user_id: str, now: datetime, *, lock: bool
) -> tuple[list[str], list[Generation]]:
    """The user's Redis keys (from the footprint) and queued/running generations."""
    fp = uow.users.footprint(
        user_id,
        hours_since=now - _HOURS_BACK,
        cooldowns_since=now - _COOLDOWNS_BACK,
        idempotency_since=now - _IDEMPOTENCY_BACK,
        asset_scope=IDEMPOTENCY_SCOPE,
    )
    keys = deps.enforcer.user_state_keys(
        user_id, now, months=fp.months, hours=fp.hours, draft_ids=fp.draft_ids,
        idempotency=fp.idempotency,
    )  # fmt: skip
    return keys, uow.generations.active_for_owner(user_id, lock=lock)


def _leases(active: list[Generation]) -> list[LeaseRef]:
    return [LeaseRef(str(g.id), g.owner_id, g.provider, g.model, Lane(g.lane)) for g in active]


def delete_account(deps: AccountDeps, user_id: str) -> AccountDeletion:
    """Delete everything of ``user_id`` (see the module docstring); idempotent."""
    cancelled = deps.billing.cancel_for_deletion(user_id)
    now = deps.now()
    pseudonym = _pseudonym()
    with deps.db.uow() as uow:
        keys, active = _redis_state(deps, uow, user_id, now, lock=False)
    # First pass: the plan cache and counters go before the rows (a crash after the
    # commit below must not leave the old plan cached for a new account of this sub).
    dropped = deps.enforcer.forget_user(keys, _leases(active))
    with deps.db.uow() as uow:
        # The user row first, FOR UPDATE: a create in flight (it share-locks the row) has
        # committed before what follows is read, and one arriving later finds no row.
        uow.users.lock(user_id)
        keys, active = _redis_state(deps, uow, user_id, now, lock=True)
        # Before the rows go: a late webhook for these ids must not resurrect the user.
        buried = uow.stripe_tombstones.bury_user(user_id, now)
        # Before the generations go (they count what each pack or grant paid for).
        uow.credits.forfeit_owner(user_id, pseudonym)
        existed = uow.users.delete(user_id)
        moved = uow.ledger.pseudonymise(user_id, pseudonym)
        for gen in active:
            if gen.status is GenerationStatus.RUNNING:  # the provider may be paid for it
                uow.ledger.record(_placeholder(gen, pseudonym))
        uow.commit()
    # Second pass, from what the lock let us see: the jobs and keys of creates that
    # committed meanwhile, and whatever a request re-seeded from rows still there.
    dropped += deps.enforcer.forget_user(keys, _leases(active))
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
    rather than a broken stream. The rest is read page by page, each page in its own
    short read-only snapshot that ends BEFORE the page is handed on: a client that stops
    reading holds no pooled connection and no transaction, however long it stalls.
    Each page is consistent in itself; memory stays flat (one page at a time).
    """
    head = _head(db, user_id, now)
    return chain((head,), _drafts(db, user_id), _assets(db, user_id))


def _head(db: Database, user_id: str, now: datetime) -> ExportHead:
    with db.uow() as uow:
        uow.snapshot()
        user = uow.users.get(user_id)
        return ExportHead(
            user_id=user_id,
            exported_at=now,
            created_at=user.created_at if user else None,
            subscription=uow.subscriptions.get(user_id),
            boost_expires_at=uow.boosts.get_expiry(user_id),
            usage=uow.ledger.usage_by_month(user_id),
            credits=uow.credits.for_owner(user_id),
        )


def _draft_page(db: Database, user_id: str, after: Keyset | None) -> list[ExportedDraft]:
    with db.uow() as uow:
        uow.snapshot()  # drafts, generations and variants of the page from one snapshot
        drafts = uow.drafts.export_page(user_id, after, DRAFT_BATCH)
        if not drafts:
            return []
        ids = [d.id for d in drafts]
        generations = uow.generations.for_drafts(ids)
        variants = uow.variants.for_drafts(ids)
    by_generation: dict[Any, list[Variant]] = {}
    for v in variants:
        by_generation.setdefault(v.generation_id, []).append(v)
    by_draft: dict[Any, list[Generation]] = {}
    for g in generations:
        by_draft.setdefault(g.draft_id, []).append(g)
    return [ExportedDraft(d, by_draft.get(d.id, []), by_generation) for d in drafts]


def _drafts(db: Database, user_id: str) -> Iterator[ExportedDraft]:
    after: Keyset | None = None
    while page := _draft_page(db, user_id, after):
        yield from page  # no connection is held while the client reads these
        after = Keyset(page[-1].draft.created_at, page[-1].draft.id)


def _assets(db: Database, user_id: str) -> Iterator[ExportedAssets]:
    for deleted in (False, True):
        after: Keyset | None = None
        while True:
            with db.autocommit() as uow:  # one statement per page
                page = uow.assets.export_page(
                    user_id, deleted=deleted, after=after, limit=ASSET_BATCH
                )
            if not page:
                break
            yield ExportedAssets(page)
            after = Keyset(page[-1].created_at, page[-1].id)
