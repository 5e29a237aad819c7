"""Credits: generation packs (bought) and support grants (given), one mechanism.

Postgres is the record (``credits``, ``credit_events``); the user's credits hash in Redis
is what admission reads. Giving a credit writes Postgres first, then the hash (a hash
not cached is seeded from Postgres by the next admission that needs it). Taking units
away goes the other way round: the hash first, so no admission can spend the units
being removed, then Postgres records the removal — never below what was used.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.billing.packs import pack_credit, units_kept
from shared.db import Database
from shared.db.credits import Credit
from shared.enforcement import Enforcer
from shared.errors import NotFound
from shared.observability.logging import log_event
from shared.plans import GRANT_DAYS

__all__ = [
    "Credit",
    "CreditChange",
    "grant",
    "pack_credit",
    "remove_unused",
    "reverse_grant",
    "sync",
    "sync_credit",
    "units_kept",
]

_log = logging.getLogger("reel.credits")


@dataclass(frozen=True, slots=True)
class CreditChange:
    """A credit after a change, and the units the change removed (0 for a gift)."""

    credit: Credit
    removed: int = 0


def sync(enforcer: Enforcer, credit: Credit) -> None:
    """Write ``credit`` (as Postgres has it now) into the user's cached credits hash."""
    enforcer.set_credit(
        credit.owner_id, str(credit.id), credit.source, credit.expires_at, credit.limit
    )


def sync_credit(db: Database, enforcer: Enforcer, credit_id: str) -> None:
    """Load one credit from Postgres and write it into the user's cached credits hash."""
    with db.uow() as uow:
        credit = uow.credits.get(uuid.UUID(credit_id))
    if credit is not None:
        sync(enforcer, credit)


def grant(
    db: Database,
    enforcer: Enforcer,
    *,
    user_id: str,
    generations: int,
    reason: str,
    actor: str,
    now: datetime,
    days: int = GRANT_DAYS,
) -> Credit:
    """A support grant: ``generations`` one-off units for ``days``, audited (who, why)."""
    with db.uow() as uow:
        uow.users.touch(user_id)
        credit = uow.credits.insert(
            id=uuid.uuid4(),
            owner_id=user_id,
            source="grant",
            units=generations,
            expires_at=now + timedelta(days=days),
            actor=actor,
            reason=reason,
        )
        uow.commit()
    if credit is None:  # a fresh uuid never conflicts
        raise RuntimeError("grant not written")
    sync(enforcer, credit)
    log_event(_log, "credit_granted", credit_id=str(credit.id), units=generations, actor=actor)
    return credit


def remove_unused(
    db: Database,
    enforcer: Enforcer,
    credit: Credit,
    *,
    keep: int,
    action: str,
    actor: str,
    reason: str | None,
) -> CreditChange:
    """Take ``credit`` down to ``max(keep, used)`` units: Redis first (from then on no
    admission spends them), then the record. Returns the credit after, and the units
    removed (0 when nothing was left to remove)."""
    _, used_in_redis = enforcer.set_credit(
        credit.owner_id, str(credit.id), credit.source, credit.expires_at, keep
    )
    with db.uow() as uow:
        removed = uow.credits.remove_unused(
            credit.id, keep=max(keep, used_in_redis), action=action, actor=actor, reason=reason
        )
        uow.commit()
        after = uow.credits.get(credit.id)
    if after is None:
        raise NotFound("Credit not found.")
    sync(enforcer, after)
    log_event(_log, "credit_removed", credit_id=str(credit.id), units=removed, action=action)
    return CreditChange(after, removed)


def reverse_grant(
    db: Database, enforcer: Enforcer, credit_id: uuid.UUID, *, actor: str, reason: str | None
) -> CreditChange:
    """Take back a support grant's unused units (what was used stays used)."""
    with db.uow() as uow:
        credit = uow.credits.get(credit_id)
    if credit is None or credit.source != "grant":
        raise NotFound("Grant not found.")
    return remove_unused(
        db, enforcer, credit, keep=0, action="reversed", actor=actor, reason=reason
    )
