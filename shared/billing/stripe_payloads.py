"""Stripe webhook events read into plain values (pure: no SDK, no I/O).

Stripe's JSON is untrusted and changes shape across API versions, so every reader here
returns None (or an empty dict) for a missing or mistyped field instead of raising; only
an event without ``id``, ``type``, ``created`` or ``data.object`` is refused (400).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.errors import BadRequest

if TYPE_CHECKING:
    from shared.db.models import SubscriptionStatus

__all__ = [
    "StripeEvent",
    "as_dict",
    "as_ref",
    "as_str",
    "invoice_subscription",
    "map_subscription_status",
    "period_end",
    "subscription_price",
]


_STATUS_MAP: Final[dict[str, str]] = {
    "active": "active",
    "trialing": "trialing",
    # Payment outstanding: no plan until Stripe reports the subscription active again.
    "past_due": "past_due",
    "unpaid": "past_due",
    "incomplete": "past_due",
    "paused": "past_due",
    # Ended for good.
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}


def map_subscription_status(stripe_status: str | None) -> SubscriptionStatus:
    """Stripe's subscription status as ours; anything unknown grants no plan."""
    from shared.db.models import SubscriptionStatus

    return SubscriptionStatus(_STATUS_MAP.get(stripe_status or "", "past_due"))


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_str(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def as_ref(value: Any) -> str | None:
    """An expandable reference: an id string or an expanded object with ``id``."""
    return as_str(value) or as_str(as_dict(value).get("id"))


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def _subscription_items(sub: dict[str, Any]) -> list[dict[str, Any]]:
    data = as_dict(sub.get("items")).get("data")
    return [as_dict(i) for i in data] if isinstance(data, list) else []


def subscription_price(sub: dict[str, Any]) -> str | None:
    """The price id of the subscription's first item that names one."""
    for item in _subscription_items(sub):
        if price := as_ref(item.get("price")):
            return price
    return None


def period_end(sub: dict[str, Any]) -> datetime | None:
    """When the subscription's current period ends (the latest item's), if Stripe says."""
    # API versions since 2025-03 keep current_period_end on the items, older on the root.
    ends = [_timestamp(i.get("current_period_end")) for i in _subscription_items(sub)]
    ends.append(_timestamp(sub.get("current_period_end")))
    known = [e for e in ends if e is not None]
    return max(known) if known else None


def invoice_subscription(invoice: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The invoice's subscription id and that subscription's metadata (both API shapes)."""
    details = as_dict(as_dict(invoice.get("parent")).get("subscription_details"))
    sub_id = as_ref(details.get("subscription")) or as_ref(invoice.get("subscription"))
    legacy = as_dict(invoice.get("subscription_details"))  # before API 2025-03-31
    return sub_id, as_dict(details.get("metadata")) or as_dict(legacy.get("metadata"))


@dataclass(frozen=True, slots=True)
class StripeEvent:
    """The envelope of one webhook delivery; ``obj`` is ``data.object`` as Stripe sent it."""

    id: str
    type: str
    created: datetime
    obj: dict[str, Any]

    @classmethod
    def parse(cls, payload: bytes) -> StripeEvent:
        """The event in a (signature-checked) body; 400 ``INVALID_EVENT`` when malformed."""
        try:
            raw = json.loads(payload)
        except ValueError as exc:
            raise BadRequest("The event is not valid JSON.", code="INVALID_EVENT") from exc
        event = as_dict(raw)
        event_id, event_type = as_str(event.get("id")), as_str(event.get("type"))
        created = _timestamp(event.get("created"))
        obj = as_dict(event.get("data")).get("object")
        if event_id is None or event_type is None or created is None or not isinstance(obj, dict):
            raise BadRequest(
                "The event lacks id, type, created or data.object.", code="INVALID_EVENT"
            )
        return cls(event_id, event_type, created, obj)
