"""Stripe payments (SPEC §8): Checkout, the customer portal and the webhook.

    StripeConfig      what this deployment may sell: price ids, URLs, secrets
    StripeBilling     the use cases: ``start_checkout``, ``open_portal``, ``handle_webhook``
    (stripe_gateway)  the SDK adapter: the only caller of ``stripe``, errors translated
    (stripe_payloads) webhook events read into plain values (pure)

Money rules kept here:

- Prices live in Stripe; we only name them by id (``STRIPE_PRICE_*``). No amount
  is ever sent from code, and plan numbers stay in ``plans.py``.
- Each Stripe event id takes effect once: ``stripe_events.record_once`` runs in the
  same transaction as the change, so a duplicate (or a concurrent redelivery) waits
  for the first to commit and then does nothing; a failure rolls both back.
- Stripe delivers out of order: a subscription write carries the event's
  ``created`` as ``source_event_created`` and the repository refuses older ones.
- A subscription that is not active/trialing grants no plan; a paid Pro Boost
  extends by ``BOOST_DAYS`` from the later of now and the current expiry.
- An event naming a deleted account's customer or subscription (``stripe_tombstones``)
  changes nothing: it would re-create the user and re-grant a plan (``_buried``).

The service is built once per instance by the container (``Container.billing``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Literal

from shared.billing.stripe_gateway import (
    MISCONFIGURED_RETRY_AFTER_S,
    StripeGateway,
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
from shared.errors import Conflict, NotFound, ServiceUnavailable
from shared.observability.logging import log_event
from shared.plans import BOOST_DAYS, PackName, PlanName

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

    from shared.clock import Clock
    from shared.config import Settings
    from shared.db.database import Database, UnitOfWork
    from shared.db.models import Subscription, SubscriptionStatus

__all__ = ["Product", "StripeBilling", "StripeConfig", "WebhookOutcome"]

_log = logging.getLogger("reel.billing.stripe")

_MAX_USER_ID_LEN: Final = 128  # users.id CHECK in schema.sql


class Product(StrEnum):
    """What ``POST /v1/billing/checkout`` sells: a plan subscription or the boost."""

    BASIC = "basic"
    STANDARD = "standard"
    PRO = "pro"
    PRO_BOOST = "pro_boost"

    @property
    def plan(self) -> PlanName | None:
        """The plan a subscription to this product grants; None for the one-time boost."""
        return None if self is Product.PRO_BOOST else PlanName(self.value)


# ---- configuration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StripeConfig:
    """The Stripe part of ``Settings``; unset values make the matching route answer 503."""

    secret_key: str | None
    webhook_secret: str | None
    api_base: str | None
    prices: Mapping[Product, str]
    success_url: str
    cancel_url: str
    pack_prices: Mapping[PackName, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s: Settings) -> StripeConfig:
        configured = {
            Product.BASIC: s.stripe_price_basic,
            Product.STANDARD: s.stripe_price_standard,
            Product.PRO: s.stripe_price_pro,
            Product.PRO_BOOST: s.stripe_price_pro_boost,
        }
        return cls(
            secret_key=s.stripe_secret_key or None,
            webhook_secret=s.stripe_webhook_secret or None,
            api_base=s.stripe_api_base or None,
            prices={p: price for p, price in configured.items() if price},
            success_url=s.stripe_success_url,
            cancel_url=s.stripe_cancel_url,
            pack_prices={
                pack: price
                for pack, price in (
                    (PackName.PACK_50, s.stripe_price_pack_50),
                    (PackName.PACK_200, s.stripe_price_pack_200),
                )
                if price
            },
        )

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise _not_configured("STRIPE_SECRET_KEY is unset")
        return self.secret_key

    def require_webhook_secret(self) -> str:
        if not self.webhook_secret:
            raise _not_configured("STRIPE_WEBHOOK_SECRET is unset")
        # Without every price id an event for one of our products could not be mapped
        # to a plan; 503 makes Stripe redeliver once the deployment is fixed.
        missing = [p for p in Product if p not in self.prices]
        if missing:
            raise _not_configured(f"{_price_env(missing[0])} is unset")
        return self.webhook_secret

    def price_for(self, product: Product) -> str:
        """The configured Stripe price id of ``product``; 503 when it is not configured."""
        price = self.prices.get(product)
        if not price:
            raise _not_configured(f"{_price_env(product)} is unset")
        return price

    def pack_price_for(self, pack: PackName) -> str:
        """The configured Stripe price id of ``pack``; 503 when it is not configured."""
        price = self.pack_prices.get(pack)
        if not price:
            raise _not_configured(f"STRIPE_PRICE_{pack.value.upper()} is unset")
        return price

    def plan_for_price(self, price_id: str | None) -> PlanName | None:
        """The plan a subscription price grants; None for the boost or a foreign price."""
        for product, price in self.prices.items():
            if price == price_id:
                return product.plan
        return None


def _price_env(product: Product) -> str:
    return f"STRIPE_PRICE_{product.value.upper()}"


def _not_configured(reason: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Billing is not configured on this deployment ({reason}).",
        details={"reason": "stripe_not_configured"},
        retry_after=MISCONFIGURED_RETRY_AFTER_S,
    )


# ---- the service --------------------------------------------------------------------

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
_PAID: Final = frozenset({"paid", "no_payment_required"})
_PACK_PRODUCT: Final = "pack"
"""``metadata.product`` of a pack's Checkout Session (``metadata.pack`` names which)."""


class StripeBilling:
    """Checkout, portal and webhook over Postgres and one ``StripeGateway``.

    ``db`` returns the database when a use case first needs it (the container's, built
    once): a webhook refused for its signature or configuration never builds it.
    """

    def __init__(
        self,
        config: StripeConfig,
        db: Callable[[], Database],
        clock: Clock,
        gateway: StripeGateway | None = None,
    ) -> None:
        self._config, self._db, self._clock = config, db, clock
        self._gateway = gateway
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Callable[[], Database], clock: Clock
    ) -> StripeBilling:
        return cls(StripeConfig.from_settings(settings), db, clock)

    @property
    def gateway(self) -> StripeGateway:
        if self._gateway is None:
            secret_key = self._config.require_secret_key()
            with self._lock:
                if self._gateway is None:
                    self._gateway = StripeGateway(secret_key, api_base=self._config.api_base)
        return self._gateway

    def cancel_for_deletion(self, user_id: str) -> bool:
        """Cancel the user's Stripe subscription, if one is still running (DELETE /v1/me).

        True when Stripe cancelled something. A subscription without a Stripe id (an
        admin grant) or already canceled needs no call; one with a Stripe id while
        Stripe is not configured is a 503: deleting the account would leave it billing.
        """
        with self._db().uow() as uow:
            sub = uow.subscriptions.get(user_id)
        if sub is None or sub.stripe_subscription_id is None:
            return False
        if sub.status.value == "canceled":
            return False
        cancelled = self.gateway.cancel_subscription(sub.stripe_subscription_id)
        log_event(_log, "stripe_subscription_cancelled", user_id=user_id, found=cancelled)
        return cancelled

    # -- checkout and portal ------------------------------------------------------------

    def start_checkout(self, user_id: str, product: Product) -> str:
        """The URL of a Checkout Session selling ``product`` to ``user_id``.

        Plans are subscriptions, the boost a one-time payment. The session and (for plans)
        the subscription carry ``metadata.user_id``/``product`` so every webhook resolves
        the user without a lookup. A user whose Stripe subscription already grants a plan
        gets 409 ``SUBSCRIPTION_EXISTS``: plan changes go through the portal, so nobody is
        billed for two subscriptions at once.
        """
        self._config.require_secret_key()
        price = self._config.price_for(product)
        if product.plan is not None:
            self._refuse_second_subscription(user_id)
        customer = self._ensure_customer(user_id)
        metadata = {"user_id": user_id, "product": product.value}
        params: CheckoutSessionCreateParams = {
            "customer": customer,
            "client_reference_id": user_id,
            "metadata": metadata,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": self._config.success_url,
            "cancel_url": self._config.cancel_url,
        }
        if product.plan is None:
            params["mode"] = "payment"
            params["payment_intent_data"] = {"metadata": metadata}
        else:
            params["mode"] = "subscription"
            params["subscription_data"] = {"metadata": metadata}
        url = self.gateway.create_checkout_session(params)
        log_event(_log, "checkout_started", product=product.value, customer=customer)
        return url

    def start_pack_checkout(self, user_id: str, pack: PackName) -> str:
        """The URL of a Checkout Session (payment mode) selling generation ``pack``.

        The session and its PaymentIntent carry ``metadata.user_id``/``product``/``pack``:
        the webhook grants the pack from them, once per session."""
        self._config.require_secret_key()
        price = self._config.pack_price_for(pack)
        customer = self._ensure_customer(user_id)
        metadata = {"user_id": user_id, "product": _PACK_PRODUCT, "pack": pack.value}
        params: CheckoutSessionCreateParams = {
            "customer": customer,
            "client_reference_id": user_id,
            "metadata": metadata,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": self._config.success_url,
            "cancel_url": self._config.cancel_url,
            "mode": "payment",
            "payment_intent_data": {"metadata": metadata},
        }
        url = self.gateway.create_checkout_session(params)
        log_event(_log, "pack_checkout_started", pack=pack.value, customer=customer)
        return url

    def open_portal(self, user_id: str) -> str:
        """The URL of a customer-portal session; 404 when the user never started a checkout."""
        self._config.require_secret_key()
        with self._db().uow() as uow:
            user = uow.users.get(user_id)
        if user is None or not user.stripe_customer_id:
            raise NotFound("No billing account yet: buy a plan or the Pro Boost first.")
        return self.gateway.create_portal_session(user.stripe_customer_id, self._config.success_url)

    def _refuse_second_subscription(self, user_id: str) -> None:
        with self._db().uow() as uow:
            sub = uow.subscriptions.get(user_id)
        if sub is not None and sub.grants_plan and sub.stripe_subscription_id:
            raise Conflict(
                "You already have a subscription; change plans in the billing portal.",
                code="SUBSCRIPTION_EXISTS",
                details={"plan": sub.plan.value, "portal": "/v1/billing/portal"},
            )

    def _ensure_customer(self, user_id: str) -> str:
        """The user's Stripe customer id, created on the first checkout only.

        Race guard: the user row is the truth. ``claim_stripe_customer`` stores ours only
        if none is stored yet (a conditional UPDATE), so a concurrent first checkout that
        got there first wins and we use its id; Stripe's
        idempotency key (derived from the user id) makes both racers get the same
        customer anyway, so no second customer is kept on our side or billed on Stripe's.
        No transaction is held open across the Stripe call.
        """
        with self._db().uow() as uow:
            user = uow.users.ensure(user_id)
            uow.commit()
        if user.stripe_customer_id:
            return user.stripe_customer_id
        created = self.gateway.create_customer(user_id, user.created_at)
        with self._db().uow() as uow:
            stored = uow.users.claim_stripe_customer(user_id, created)
            uow.commit()
        if stored != created:
            return stored or created
        log_event(_log, "stripe_customer_created", customer=created)
        return created

    # -- webhook ------------------------------------------------------------------------

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
            if session.get("mode") == "payment" and metadata.get("product") == _PACK_PRODUCT:
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
