"""The Redis references of a generation: its lease (both slots) and its charge (the units).

One spelling for the worker, the sweeper, the failure callback and the cancel: each ends a
job through ``Enforcer.finish`` with these, so they refund and release the same keys.
"""

from __future__ import annotations

from shared.db import Generation
from shared.enforcement import ChargeRef, LeaseRef, Scope
from shared.plans import Lane

__all__ = ["charge_of", "lease_of"]


def lease_of(gen: Generation, attempt: int | None) -> LeaseRef:
    """The lease of ``gen`` fenced on claim ``attempt`` (None: unfenced)."""
    return LeaseRef(
        str(gen.id), gen.owner_id, gen.provider, gen.model, Lane(gen.lane), attempt=attempt
    )


def charge_of(gen: Generation) -> ChargeRef:
    """The units ``gen`` took: its month, or the pack or grant that paid (``credit_id``),
    and the full-regen cap for a full regeneration."""
    credit = str(gen.credit_id) if gen.credit_id else ""
    return ChargeRef(str(gen.id), gen.owner_id, gen.period_month, Scope(gen.kind.value), credit)
