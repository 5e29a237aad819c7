"""Generation packs bought with Stripe: the credit a paid Checkout Session gives, and
what a refund takes back (the refunded share, never a used unit).

Pure rules plus one repository call each, inside the caller's transaction (the Stripe
event's, so the event id and the change commit together).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.plans import PACKS, PackName

if TYPE_CHECKING:
    from shared.db import UnitOfWork
    from shared.db.credits import Credit

__all__ = ["pack_credit", "units_kept"]


def pack_credit(
    uow: UnitOfWork,
    *,
    user_id: str,
    pack: PackName,
    now: datetime,
    checkout_session: str,
    payment_intent: str | None,
    actor: str,
) -> Credit | None:
    """Insert the credit a paid pack gives (inside the caller's transaction); None when
    this Checkout Session already has its credit. A refund that Stripe delivered before
    the payment (out of order) is applied at once."""
    spec = PACKS[pack]
    credit = uow.credits.insert(
        id=uuid.uuid4(),
        owner_id=user_id,
        source="pack",
        pack=pack.value,
        units=spec.generations,
        expires_at=now + timedelta(days=spec.valid_days),
        actor=actor,
        checkout_session=checkout_session,
        payment_intent=payment_intent,
    )
    if credit is None or payment_intent is None:
        return credit
    early = uow.credits.pack_refund(payment_intent)
    if early is None:
        return credit
    keep = units_kept(credit.units, *early)
    uow.credits.remove_unused(credit.id, keep=keep, action="refunded", actor=actor, reason=None)
    return uow.credits.get(credit.id)


def units_kept(units: int, amount_refunded: int, amount: int) -> int:
    """Units a pack keeps after ``amount_refunded`` of ``amount`` was refunded: the
    refunded share is taken away, rounded in the buyer's disfavour only to whole units."""
    if amount <= 0 or amount_refunded <= 0:
        return units
    refunded = min(units, -(-units * amount_refunded // amount))
    return units - refunded
