"""``units_kept``: what a generation pack keeps after a (partial) refund."""

from __future__ import annotations

import pytest

from shared.billing.packs import units_kept


@pytest.mark.parametrize(
    ("units", "refunded", "amount", "kept"),
    [
        (50, 0, 900, 50),  # nothing refunded
        (50, 900, 900, 0),  # all of it
        (50, 1, 1, 0),  # all of a one-cent pack
        (50, 1, 900, 49),  # one cent takes a whole unit (the buyer's disfavour)
        (10, 1, 3, 6),  # a third of 10 units: 4 taken (3.33 rounded up)
        (10, 2, 3, 3),  # two thirds: 7 taken (6.67 rounded up)
        (50, 5000, 900, 0),  # more than was paid: never below zero
        (50, 100, 0, 50),  # a free pack: nothing to take a share of
        (50, 100, -1, 50),
    ],
)
def test_units_kept(units: int, refunded: int, amount: int, kept: int) -> None:
    result = units_kept(units, refunded, amount)
    assert result == kept
    assert isinstance(result, int)
