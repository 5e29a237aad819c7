"""POST /webhooks/stripe (SPEC §8): Stripe's event deliveries.

No bearer auth: ``StripeBilling`` verifies ``Stripe-Signature`` over the raw body (400
``INVALID_SIGNATURE``); 503 ``SERVICE_UNAVAILABLE`` while Stripe is not configured. A
module of its own, apart from checkout and portal: the stripe-webhook function then
never imports their request and response models (cold starts pay for every import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["stripe_webhook"]


def stripe_webhook(req: ApiRequest, c: Container) -> ApiResponse:
    outcome = c.billing.handle_webhook(req.body, req.headers.get("Stripe-Signature"))
    if outcome.user_id is not None:
        c.enforcer.invalidate_plan(outcome.user_id)  # after commit: the next read reloads
    if outcome.credit_ids:  # packs: Redis follows the record (also on a replay)
        from shared.services.credits import sync_credit

        for credit_id in outcome.credit_ids:
            sync_credit(c.db, c.enforcer, credit_id)
    return ApiResponse.json(200, {"received": True, "result": outcome.result})
