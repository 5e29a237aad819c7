"""The Stripe webhook (SPEC §8): verify the signature, then apply one event exactly once.

    StripeWebhooks   ``handle_webhook``: subscriptions, checkouts (plans, the boost,
                     packs), failed payments, refunded pack charges
    WebhookOutcome   what one delivery did (the caller invalidates the user's plan cache)

Money rules kept here:

- Each Stripe event id takes effect once: ``stripe_events.record_once`` runs in the
  same transaction as the change, so a duplicate (or a concurrent redelivery) waits
  for the first to commit and then does nothing; a failure rolls both back.
- Stripe delivers out of order: a subscription write carries the event's
  ``created`` as ``source_event_created`` and the repository refuses older ones.
- A subscription that is not active/trialing grants no plan; a paid Pro Boost
  extends by ``BOOST_DAYS`` from the later of now and the current expiry.
- An event naming a deleted account's customer or subscription (``stripe_tombstones``)
  changes nothing: it would re-create the user and re-grant a plan (``_buried``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.billing.stripe_config import PACK_PRODUCT, Product, StripeConfig
from shared.billing.stripe_gateway import (
    verify_signature,
)
from shared.billing.stripe_payloads import (
    StripeEvent,
    as_dict,
    as_ref,
    as_str,
    invoice_subscription,
    map_subscription_status,
    period_end,
    subscription_price,
)
from shared.observability.logging import log_event
from shared.plans import BOOST_DAYS, PackName

if TYPE_CHECKING:
    from shared.clock import Clock
    from shared.db.database import Database, UnitOfWork
    from shared.db.models import Subscription, SubscriptionStatus

__all__ = ["HANDLED_EVENTS", "Result", "StripeWebhooks", "WebhookOutcome"]

_log = logging.getLogger("reel.billing.stripe")

_MAX_USER_ID_LEN: Final = 128  # users.id CHECK in schema.sql


Result = Literal["applied", "duplicate", "stale", "ignored"]


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What one delivery did. ``user_id`` is set whenever the event concerns a known user:
    the caller invalidates that user's cached plan (also on a duplicate, so a delivery
    that committed but failed to invalidate is repaired by Stripe's redelivery)."""

    event_id: str
    type: str
    result: Result
    user_id: str | None = None
    detail: str | None = None
    credit_ids: tuple[str, ...] = ()  # packs this event concerns: the caller syncs Redis


_SUBSCRIPTION_EVENTS: Final = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
_CHECKOUT_EVENTS: Final = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
HANDLED_EVENTS: Final = (
    _SUBSCRIPTION_EVENTS
    | _CHECKOUT_EVENTS
    | {
        "invoice.payment_failed",
        "charge.refunded",
    }
)
"""The event types the webhook acts on: the Stripe Dashboard's endpoint must send each
(docs/deploy.md lists them; any other type is answered 200 and ignored)."""
_PAID: Final = frozenset({"paid", "no_payment_required"})


class StripeWebhooks:
    """The webhook's use cases over Postgres (``db`` returns it on first need): each
    event is applied in one transaction together with its ``record_once``."""

    def __init__(self, config: StripeConfig, db: Callable[[], Database], clock: Clock) -> None:
        self._config, self._db, self._clock = config, db, clock

    def handle_webhook(self, payload: bytes, signature: str | None) -> WebhookOutcome:
        """Verify, then apply one event exactly once. Unknown types are ignored (200)."""
        secret = self._config.require_webhook_secret()
        verify_signature(payload, signature, secret)
        event = StripeEvent.parse(payload)
        if event.type in _SUBSCRIPTION_EVENTS:
            outcome = self._on_subscription(event)
        elif event.type in _CHECKOUT_EVENTS:
            outcome = self._on_checkout(event)
        elif event.type == "invoice.payment_failed":
            outcome = self._on_payment_failed(event)
        elif event.type == "charge.refunded":
            outcome = self._on_charge_refunded(event)
        else:
            outcome = WebhookOutcome(event.id, event.type, "ignored", detail="unhandled type")
        log_event(
            _log,
            "stripe_event",
            event_id=event.id,
            event_type=event.type,
            result=outcome.result,
            detail=outcome.detail,
            user_id=outcome.user_id,
        )
        return outcome

    def _buried(self, uow: UnitOfWork, event: StripeEvent, *stripe_ids: str | None) -> bool:
        """True when the event names a deleted account's customer or subscription: the
        caller returns without committing, so the row ``_resolve_user`` may have just
        re-created from ``metadata.user_id`` is rolled back.

        Checked after that touch, not before, to close the race with a deletion
        committing meanwhile: a deletion committed before the touch is seen here (each
        statement reads the latest commits); one committing after it deletes the user
        row after this event's writes, which lock that row, so the cascade removes them
        (or, if it deletes first, those writes fail the foreign key and Stripe redelivers
        the event, to be ignored here).
        """
        ids = [i for i in stripe_ids if i is not None]
        if not uow.stripe_tombstones.buried(ids):
            return False
        log_event(
            _log,
            "stripe_event_for_deleted_account",
            level=logging.WARNING,
            event_id=event.id,
            event_type=event.type,
            stripe_ids=ids,
        )
        return True

    def _resolve_user(
        self, uow: UnitOfWork, metadata: dict[str, Any], reference: Any, customer: str | None
    ) -> str | None:
        """metadata.user_id / client_reference_id (set by our checkout), else the customer."""
        claimed = as_str(metadata.get("user_id")) or as_str(reference)
        if claimed is not None and len(claimed) <= _MAX_USER_ID_LEN:
            uow.users.touch(claimed)  # rows referencing the user need it to exist
            return claimed
        if customer is not None:
            user = uow.users.by_stripe_customer(customer)
            if user is not None:
                return user.id
        return None

    def _link_customer(self, uow: UnitOfWork, user_id: str, customer: str | None) -> None:
        if customer is None:
            return
        user = uow.users.get(user_id)
        if user is None or user.stripe_customer_id:
            return  # the first customer stays: the portal and lookups keep pointing at it
        owner = uow.users.by_stripe_customer(customer)
        if owner is None:
            uow.users.set_stripe_customer(user_id, customer)

    def _on_subscription(self, event: StripeEvent) -> WebhookOutcome:
        from shared.db.models import SubscriptionStatus

        sub = event.obj
        sub_id, customer = as_ref(sub.get("id")), as_ref(sub.get("customer"))
        status = (
            SubscriptionStatus.CANCELED
            if event.type == "customer.subscription.deleted"
            else map_subscription_status(as_str(sub.get("status")))
        )
        plan = self._config.plan_for_price(subscription_price(sub))
        with self._db().uow() as uow:
            user_id = self._resolve_user(uow, as_dict(sub.get("metadata")), None, customer)
            if self._buried(uow, event, customer, sub_id):
                return _for_deleted_account(event)
            if user_id is None:
                return WebhookOutcome(event.id, event.type, "ignored", detail="unknown customer")
            if not uow.stripe_events.record_once(event.id, event.type, event.created):
                return WebhookOutcome(event.id, event.type, "duplicate", user_id)
            stored = uow.subscriptions.get(user_id)
            skip = _skip_subscription_write(stored, sub_id, status)
            if skip is not None:
                uow.commit()  # remember the event id: a redelivery changes nothing either
                return WebhookOutcome(event.id, event.type, "ignored", user_id, skip)
            if plan is None:
                # A price we do not sell: only its ending matters (it may be the row we hold).
                if stored is None or stored.stripe_subscription_id != sub_id or _grants(status):
                    uow.commit()
                    return WebhookOutcome(event.id, event.type, "ignored", user_id, "foreign price")
                plan = stored.plan
            self._link_customer(uow, user_id, customer)
            written = uow.subscriptions.upsert(
                user_id,
                plan,
                status,
                stripe_subscription_id=sub_id,
                current_period_end=period_end(sub),
                source_event_created=event.created,
            )
            uow.commit()
        applied = written.source_event_created == event.created and written.status == status
        return WebhookOutcome(
            event.id,
            event.type,
            "applied" if applied else "stale",
            user_id,
            f"{plan.value}:{status.value}",
        )

    def _on_checkout(self, event: StripeEvent) -> WebhookOutcome:
        session = event.obj
        metadata, customer = as_dict(session.get("metadata")), as_ref(session.get("customer"))
        with self._db().uow() as uow:
            user_id = self._resolve_user(
                uow, metadata, session.get("client_reference_id"), customer
            )
            if self._buried(uow, event, customer, as_ref(session.get("subscription"))):
                return _for_deleted_account(event)
            if user_id is None:
                return WebhookOutcome(event.id, event.type, "ignored", detail="unknown customer")
            if not uow.stripe_events.record_once(event.id, event.type, event.created):
                return WebhookOutcome(event.id, event.type, "duplicate", user_id)
            self._link_customer(uow, user_id, customer)
            detail = "customer linked"
            if session.get("mode") == "payment" and metadata.get("product") == PACK_PRODUCT:
                outcome = self._grant_pack(uow, event, user_id, session, metadata)
                uow.commit()
                return outcome
            if session.get("mode") == "payment" and metadata.get("product") == Product.PRO_BOOST:
                if session.get("payment_status") in _PAID:
                    expires_at = uow.boosts.extend(user_id, self._clock.now(), BOOST_DAYS)
                    detail = f"boost until {expires_at.isoformat()}"
                else:  # delayed payment method: async_payment_succeeded will follow
                    detail = "boost awaiting payment"
            uow.commit()
        return WebhookOutcome(event.id, event.type, "applied", user_id, detail)

    def _grant_pack(
        self,
        uow: UnitOfWork,
        event: StripeEvent,
        user_id: str,
        session: dict[str, Any],
        metadata: dict[str, Any],
    ) -> WebhookOutcome:
        """The pack a paid session bought, once per session (inside the event's
        transaction); a second event for the same session finds it and adds nothing."""
        from shared.billing.packs import pack_credit

        pack_name = as_str(metadata.get("pack")) or ""
        session_id = as_ref(session.get("id"))
        if pack_name not in {p.value for p in PackName} or session_id is None:
            return WebhookOutcome(event.id, event.type, "ignored", user_id, "unknown pack")
        if session.get("payment_status") not in _PAID:
            return WebhookOutcome(event.id, event.type, "applied", user_id, "pack awaiting payment")
        credit = pack_credit(
            uow,
            user_id=user_id,
            pack=PackName(pack_name),
            now=self._clock.now(),
            checkout_session=session_id,
            payment_intent=as_ref(session.get("payment_intent")),
            actor=f"stripe:{event.id}",
        )
        if credit is None:
            return WebhookOutcome(event.id, event.type, "ignored", user_id, "pack already granted")
        return WebhookOutcome(
            event.id,
            event.type,
            "applied",
            user_id,
            f"{pack_name}: {credit.limit} until {credit.expires_at.isoformat()}",
            (str(credit.id),),
        )

    def _on_charge_refunded(self, event: StripeEvent) -> WebhookOutcome:
        """A refunded pack payment loses the refunded share of its units, as far as they
        are unused. Stripe's ``amount_refunded`` is cumulative and is kept (monotonic)
        even before the pack's credit exists: a refund delivered before the payment's
        completion is applied when the credit is granted."""
        from shared.billing.packs import units_kept

        charge = event.obj
        intent = as_ref(charge.get("payment_intent"))
        amount, refunded = charge.get("amount"), charge.get("amount_refunded")
        if intent is None or not isinstance(amount, int) or not isinstance(refunded, int):
            return WebhookOutcome(event.id, event.type, "ignored", detail="not a payment")
        if amount <= 0:
            return WebhookOutcome(event.id, event.type, "ignored", detail="free payment")
        with self._db().uow() as uow:
            if not uow.stripe_events.record_once(event.id, event.type, event.created):
                credit = uow.credits.by_payment_intent(intent)
                user = credit.owner_id if credit else None
                ids = (str(credit.id),) if credit else ()
                return WebhookOutcome(event.id, event.type, "duplicate", user, credit_ids=ids)
            on_record = uow.credits.record_pack_refund(intent, refunded, amount)
            credit = uow.credits.by_payment_intent(intent, lock=True)
            if credit is None:
                uow.commit()
                return WebhookOutcome(event.id, event.type, "applied", detail="refund kept")
            keep = units_kept(credit.units, on_record, amount)
            removed = uow.credits.remove_unused(
                credit.id, keep=keep, action="refunded", actor=f"stripe:{event.id}", reason=None
            )
            uow.commit()
        return WebhookOutcome(
            event.id,
            event.type,
            "applied" if removed else "ignored",
            credit.owner_id,
            f"removed {removed} unused",
            (str(credit.id),),
        )

    def _on_payment_failed(self, event: StripeEvent) -> WebhookOutcome:
        from shared.db.models import SubscriptionStatus

        invoice = event.obj
        sub_id, sub_metadata = invoice_subscription(invoice)
        metadata = as_dict(invoice.get("metadata")) | sub_metadata
        customer = as_ref(invoice.get("customer"))
        with self._db().uow() as uow:
            user_id = self._resolve_user(uow, metadata, None, customer)
            if self._buried(uow, event, customer, sub_id):
                return _for_deleted_account(event)
            if user_id is None:
                return WebhookOutcome(event.id, event.type, "ignored", detail="unknown customer")
            if not uow.stripe_events.record_once(event.id, event.type, event.created):
                return WebhookOutcome(event.id, event.type, "duplicate", user_id)
            stored = uow.subscriptions.get(user_id)
            if (
                stored is None
                or sub_id is None
                or stored.stripe_subscription_id != sub_id
                or not stored.grants_plan
            ):
                uow.commit()
                return WebhookOutcome(
                    event.id, event.type, "ignored", user_id, "not the active subscription"
                )
            written = uow.subscriptions.upsert(
                user_id,
                stored.plan,
                SubscriptionStatus.PAST_DUE,
                stripe_subscription_id=sub_id,
                current_period_end=stored.current_period_end,
                source_event_created=event.created,
            )
            uow.commit()
        applied = written.status == SubscriptionStatus.PAST_DUE
        return WebhookOutcome(
            event.id, event.type, "applied" if applied else "stale", user_id, "past_due"
        )


def _for_deleted_account(event: StripeEvent) -> WebhookOutcome:
    return WebhookOutcome(event.id, event.type, "ignored", detail="deleted account")


def _grants(status: SubscriptionStatus) -> bool:
    return status.value in ("active", "trialing")  # as Subscription.grants_plan


def _skip_subscription_write(
    stored: Subscription | None, sub_id: str | None, status: SubscriptionStatus
) -> str | None:
    """Why an event about ``sub_id`` must not touch the stored row (None: write it).

    One row per user: when a user replaced one Stripe subscription with another, the
    old one ending (canceled, past_due) must not take away the plan the new one grants.
    """
    if (
        stored is not None
        and stored.grants_plan
        and stored.stripe_subscription_id is not None
        and stored.stripe_subscription_id != sub_id
        and not _grants(status)
    ):
        return "another subscription is current"
    return None
