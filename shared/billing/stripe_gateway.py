"""The Stripe SDK adapter: the one place ``stripe`` is called and its errors translated.

    StripeGateway       ``stripe.StripeClient`` built on first use; every Stripe error
                        leaves it as ``ServiceUnavailable`` (``raise … from exc``)
    verify_signature    ``Stripe-Signature`` over the raw webhook body (400 when wrong)

``stripe`` is imported lazily (it is slow to import): only the first Stripe call or
webhook of an instance pays for it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, NoReturn

from shared.errors import BadRequest, ServiceUnavailable
from shared.observability.logging import log_event

if TYPE_CHECKING:
    from stripe import StripeClient
    from stripe.params import CustomerCreateParams
    from stripe.params.billing_portal import SessionCreateParams as PortalSessionCreateParams
    from stripe.params.checkout import SessionCreateParams as CheckoutSessionCreateParams

__all__ = [
    "MISCONFIGURED_RETRY_AFTER_S",
    "SIGNATURE_TOLERANCE_S",
    "StripeGateway",
    "verify_signature",
]

_log = logging.getLogger("reel.billing.stripe")

SIGNATURE_TOLERANCE_S: Final = 300
"""Stripe's recommended replay window: an older signed timestamp is refused."""

MISCONFIGURED_RETRY_AFTER_S: Final = 3600
"""``Retry-After`` of a 503 that only a deployment change can fix."""

_REQUEST_TIMEOUT_S: Final = 20.0
"""Per Stripe call; well inside the function's own timeout so we answer 503, not die."""

_NETWORK_RETRIES: Final = 2
"""The SDK retries connection errors, 409 and 5xx with idempotency keys it sets."""

_RETRY_AFTER_S: Final = 5
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class StripeGateway:
    """``stripe.StripeClient`` built on first use, once, and shared by every thread.

    The SDK's default HTTP client keeps one ``requests`` session per thread, so one
    client per instance is safe under functions-framework's threads. Every Stripe
    error leaves this class as ``ServiceUnavailable`` (503, ``Retry-After``).
    """

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        timeout_s: float = _REQUEST_TIMEOUT_S,
        max_network_retries: int = _NETWORK_RETRIES,
    ) -> None:
        self._secret_key, self._api_base = secret_key, api_base
        self._timeout_s, self._retries = timeout_s, max_network_retries
        self._lock = threading.Lock()
        self._client: StripeClient | None = None

    def _stripe(self) -> StripeClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import stripe

                    self._client = stripe.StripeClient(
                        self._secret_key,
                        base_addresses={"api": self._api_base} if self._api_base else None,
                        max_network_retries=self._retries,
                        http_client=stripe.new_default_http_client(timeout=self._timeout_s),
                    )
        return self._client

    def create_customer(self, user_id: str, user_created_at: datetime) -> str:
        """A new Stripe customer for ``user_id``; its id.

        The idempotency key is derived from the user row (id and creation time):
        concurrent first checkouts (and a retry after our own write failed) get the same
        customer back from Stripe for 24 h instead of creating a second one, while a user
        re-created under the same sub after deleting the account gets a new customer, not
        the deleted account's (tombstoned) one.
        """
        params: CustomerCreateParams = {"metadata": {"user_id": user_id}}
        incarnation = (user_created_at - _EPOCH) // timedelta(microseconds=1)
        try:
            customer = self._stripe().v1.customers.create(
                params, {"idempotency_key": f"reel-customer-{user_id}-{incarnation}"}
            )
        except Exception as exc:
            _raise_translated(exc, "create_customer")
        return customer.id

    def create_checkout_session(self, params: CheckoutSessionCreateParams) -> str:
        """The URL of a new Checkout Session."""
        try:
            session = self._stripe().v1.checkout.sessions.create(params)
        except Exception as exc:
            _raise_translated(exc, "create_checkout_session")
        if not session.url:
            raise ServiceUnavailable("Stripe returned a Checkout Session without a URL.")
        return session.url

    def create_portal_session(self, customer_id: str, return_url: str) -> str:
        """The URL of a new customer-portal session."""
        params: PortalSessionCreateParams = {"customer": customer_id, "return_url": return_url}
        try:
            session = self._stripe().v1.billing_portal.sessions.create(params)
        except Exception as exc:
            _raise_translated(exc, "create_portal_session")
        return session.url

    def cancel_subscription(self, subscription_id: str) -> bool:
        """Cancel at once (account deletion); False when Stripe no longer has it.

        Cancelling is idempotent on our side: a subscription Stripe reports missing
        (``resource_missing``: already cancelled and gone, or never there) is done.
        """
        import stripe

        try:
            self._stripe().v1.subscriptions.cancel(
                subscription_id, None, {"idempotency_key": f"reel-cancel-{subscription_id}"}
            )
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return False
            _raise_translated(exc, "cancel_subscription")
        except Exception as exc:
            _raise_translated(exc, "cancel_subscription")
        return True


def _raise_translated(exc: Exception, operation: str) -> NoReturn:
    """Stripe's errors as ours (the one translation boundary); anything else re-raised."""
    import stripe

    if not isinstance(exc, stripe.StripeError):
        raise exc
    misconfigured = isinstance(exc, stripe.AuthenticationError | stripe.PermissionError)
    log_event(
        _log,
        "stripe_api_error",
        level=logging.ERROR if misconfigured else logging.WARNING,
        operation=operation,
        error_type=type(exc).__name__,
        http_status=exc.http_status,
        stripe_code=exc.code,
        stripe_request_id=exc.request_id,
    )
    if misconfigured:
        raise ServiceUnavailable(
            "Billing is misconfigured on this deployment (Stripe rejected our API key).",
            details={"reason": "stripe_auth"},
            retry_after=MISCONFIGURED_RETRY_AFTER_S,
        ) from exc
    raise ServiceUnavailable(
        "The payment provider is unavailable or refused the request; retry shortly.",
        details={"reason": "stripe_error"},
        retry_after=_RETRY_AFTER_S,
    ) from exc


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, tolerance_s: int = SIGNATURE_TOLERANCE_S
) -> None:
    """Check ``Stripe-Signature`` over the raw body; 400 ``INVALID_SIGNATURE`` when it fails.

    Missing or malformed header, wrong secret, altered body and a timestamp older than
    ``tolerance_s`` (a replay) are all refused before anything is read from the body.
    A request without the header is refused before the SDK is imported.
    """
    if not header:
        raise _invalid_signature()
    import stripe

    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance_s)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise _invalid_signature() from exc


def _invalid_signature() -> BadRequest:
    return BadRequest(
        "The Stripe-Signature header is missing or does not match this payload.",
        code="INVALID_SIGNATURE",
    )
