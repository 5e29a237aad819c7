"""Stripe billing routes (SPEC §8): checkout and portal (the webhook: ``stripe_webhook``).

Each answers 503 ``SERVICE_UNAVAILABLE`` with a clear message while Stripe is not
configured on the deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["checkout", "pack_checkout", "portal"]


def checkout(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import CheckoutRequest, UrlResponse
    from shared.billing.stripe_billing import Product

    body = req.parse(CheckoutRequest)
    url = c.billing.start_checkout(req.user_id, Product(body.product))
    return ApiResponse.json(201, UrlResponse(url=url))


def pack_checkout(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import PackCheckoutRequest, UrlResponse

    body = req.parse(PackCheckoutRequest)
    url = c.billing.start_pack_checkout(req.user_id, body.pack)
    return ApiResponse.json(201, UrlResponse(url=url))


def portal(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.models import UrlResponse

    url = c.billing.open_portal(req.user_id)
    return ApiResponse.json(201, UrlResponse(url=url))
