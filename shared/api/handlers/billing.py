"""Stripe billing routes (SPEC §8); 503 with a clear message until Stripe is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.http import ApiRequest, ApiResponse
from shared.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["checkout", "portal", "stripe_webhook"]

_NOT_CONFIGURED = "Billing is not configured on this deployment (STRIPE_SECRET_KEY is unset)."


def _require_stripe(c: Container) -> None:
    if not c.settings.stripe_secret_key:
        raise ServiceUnavailable(_NOT_CONFIGURED, retry_after=3600)


def checkout(req: ApiRequest, c: Container) -> ApiResponse:
    _require_stripe(c)
    raise ServiceUnavailable("Checkout is not available yet.", retry_after=3600)


def portal(req: ApiRequest, c: Container) -> ApiResponse:
    _require_stripe(c)
    raise ServiceUnavailable("The customer portal is not available yet.", retry_after=3600)


def stripe_webhook(req: ApiRequest, c: Container) -> ApiResponse:
    _require_stripe(c)
    raise ServiceUnavailable("Webhooks are not processed yet.", retry_after=3600)
