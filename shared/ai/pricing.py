"""Cost estimates in integer micro-dollars for the usage ledger (REFERENCE.md: MiniMax prices).

A USD price per 1M tokens is numerically the micro-dollar price per token, so the table
stores micro-dollars per 1M tokens and the arithmetic stays in integers (rounded up: we
never under-estimate what a generation cost us).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

__all__ = ["ModelPrice", "cost_micro_usd", "price_for", "register_price"]

_PER_MILLION: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Micro-dollars per 1M tokens, input and output."""

    input_per_mtok: int
    output_per_mtok: int


_STANDARD: Final = ModelPrice(300_000, 1_200_000)  # $0.30 in / $1.20 out per 1M
_HIGHSPEED: Final = ModelPrice(600_000, 2_400_000)  # $0.60 in / $2.40 out per 1M

# Keys are lower-cased model names. M1 and Text-01 prices are unconfirmed (REFERENCE.md),
# so they are deliberately absent and fall back to the most expensive known price.
_PRICES: Final[dict[str, ModelPrice]] = {
    "offline-v1": ModelPrice(0, 0),  # the local demo writer costs nothing
    **{f"minimax-{v}": _STANDARD for v in ("m2", "m2.1", "m2.5", "m2.7")},
    **{f"minimax-{v}-highspeed": _HIGHSPEED for v in ("m2", "m2.1", "m2.5", "m2.7")},
}

# Unknown models are charged at the dearest known price so a new model never looks free.
_FALLBACK: Final = max(_PRICES.values(), key=lambda p: (p.output_per_mtok, p.input_per_mtok))


# Prices of configured models outside the table (the fallback provider's model, from
# FALLBACK_AI_PRICE_*): set once at start-up by the factory, read by every cost.
_CONFIGURED: dict[str, ModelPrice] = {}
_CONFIGURED_LOCK = threading.Lock()


def register_price(model: str, input_usd_per_mtok: Decimal, output_usd_per_mtok: Decimal) -> None:
    """Price ``model`` (a configured provider's model) at these USD per 1M tokens, rounded
    up to whole micro-dollars per 1M. The table's own models keep their table price."""
    if input_usd_per_mtok < 0 or output_usd_per_mtok < 0:
        raise ValueError("prices must be >= 0")
    key = model.strip().lower()
    if key in _PRICES:
        return
    price = ModelPrice(
        math.ceil(input_usd_per_mtok * _PER_MILLION),
        math.ceil(output_usd_per_mtok * _PER_MILLION),
    )
    with _CONFIGURED_LOCK:
        _CONFIGURED[key] = price


def price_for(model: str) -> ModelPrice:
    """The price of ``model`` (case-insensitive): the table's, else a configured one, else
    the dearest known price."""
    key = model.strip().lower()
    return _PRICES.get(key) or _CONFIGURED.get(key) or _FALLBACK


def cost_micro_usd(model: str, prompt_tokens: int, completion_tokens: int) -> int:
    """Estimated cost of a call in integer micro-dollars, rounded up."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts must be >= 0")
    price = price_for(model)
    total = prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
    return -(-total // _PER_MILLION)  # integer ceiling division: exact for any size
