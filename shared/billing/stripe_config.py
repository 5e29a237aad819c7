"""What this deployment sells through Stripe, and its Stripe settings (SPEC §8).

    Product        what ``POST /v1/billing/checkout`` sells: a plan or the Pro Boost
    StripeConfig   the Stripe part of ``Settings``: price ids, URLs, secrets (unset: 503)

Prices live in Stripe; we only name them by id (``STRIPE_PRICE_*``). No amount is ever
sent from code, and plan numbers stay in ``shared/plans.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from shared.billing.stripe_gateway import (
    MISCONFIGURED_RETRY_AFTER_S,
)
from shared.errors import ServiceUnavailable
from shared.plans import PackName, PlanName

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["PACK_PRODUCT", "Product", "StripeConfig"]

PACK_PRODUCT: Final = "pack"
"""``metadata.product`` of a pack's Checkout Session (``metadata.pack`` names which)."""


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
