"""Stripe billing routes (SPEC §8): checkout, portal and the webhook.

Each answers 503 ``SERVICE_UNAVAILABLE`` with a clear message while Stripe is not
configured on the deployment. The webhook has no bearer auth: ``StripeBilling``
verifies ``Stripe-Signature`` over the raw body (400 ``INVALID_SIGNATURE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import CheckoutRequest, UrlResponse
from shared.billing.stripe_billing import Product

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["checkout", "portal", "stripe_webhook"]


def checkout(req: ApiRequest, c: Container) -> ApiResponse:
    body = req.parse(CheckoutRequest)
    url = c.billing.start_checkout(req.user_id, Product(body.product))
    return ApiResponse.json(201, UrlResponse(url=url))


def portal(req: ApiRequest, c: Container) -> ApiResponse:
    url = c.billing.open_portal(req.user_id)
    return ApiResponse.json(201, UrlResponse(url=url))


def stripe_webhook(req: ApiRequest, c: Container) -> ApiResponse:
    outcome = c.billing.handle_webhook(req.body, req.headers.get("Stripe-Signature"))
    if outcome.user_id is not None:
        c.enforcer.invalidate_plan(outcome.user_id)  # after commit: the next read reloads
    return ApiResponse.json(200, {"received": True, "result": outcome.result})
