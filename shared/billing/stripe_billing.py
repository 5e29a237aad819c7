"""Stripe payments (SPEC §8): Checkout, the customer portal and the webhook.

    StripeBilling     the use cases: ``start_checkout``, ``open_portal``, ``handle_webhook``
    (stripe_config)   ``Product`` and ``StripeConfig``: what this deployment may sell
    (stripe_webhooks) ``StripeWebhooks``: each event applied exactly once
    (stripe_gateway)  the SDK adapter: the only caller of ``stripe``, errors translated
    (stripe_payloads) webhook events read into plain values (pure)

Prices live in Stripe; we only name them by id (``STRIPE_PRICE_*``). No amount is ever
sent from code, and plan numbers stay in ``shared/plans.py``. A user whose Stripe
subscription grants a plan cannot start a second one (plan changes go through the
portal), and a Stripe customer is created once per user, on the first checkout.

The service is built once per instance by the container (``Container.billing``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.billing.stripe_config import PACK_PRODUCT, Product, StripeConfig
from shared.billing.stripe_gateway import StripeGateway
from shared.billing.stripe_webhooks import StripeWebhooks, WebhookOutcome
from shared.errors import Conflict, NotFound
from shared.observability.logging import log_event
from shared.plans import PackName

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

    from shared.clock import Clock
    from shared.config import Settings
    from shared.db.database import Database

__all__ = ["Product", "StripeBilling", "StripeConfig", "WebhookOutcome"]

_log = logging.getLogger("reel.billing.stripe")


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
        self._webhooks = StripeWebhooks(config, db, clock)
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
        metadata = {"user_id": user_id, "product": PACK_PRODUCT, "pack": pack.value}
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
        """Verify, then apply one event exactly once (``StripeWebhooks``). Unknown types
        are ignored (200)."""
        return self._webhooks.handle_webhook(payload, signature)
