"""Enforcement: plan limits, usage counters, leases and idempotency, decided in Redis.

The facade is what a service needs: ``Enforcer`` (every decision, one Lua call in the
common case), the request and the references a ticket carries, and the three places where
being limited stops being a value and becomes the SPEC error (``enforce_*``). Everything
else is in its own module: ``scripts/<script>.py`` holds one Lua script's KEYS, ARGV,
reply type, builder and parser; ``values.py`` the values several scripts share;
``ports.py`` the data ports (``PlanInfo``, ``Truth`` …).
"""

from shared.enforcement.scripts.admission import (
    AdmissionRequest,
    AdmissionTicket,
    enforce_or_throw,
)
from shared.enforcement.scripts.idempotency import enforce_idempotency
from shared.enforcement.scripts.refresh_lease import enforce_lease
from shared.enforcement.service import Enforcer
from shared.enforcement.values import ChargeRef, LeaseRef, Scope, StatusNote, StoredResponse

__all__ = [
    "AdmissionRequest",
    "AdmissionTicket",
    "ChargeRef",
    "Enforcer",
    "LeaseRef",
    "Scope",
    "StatusNote",
    "StoredResponse",
    "enforce_idempotency",
    "enforce_lease",
    "enforce_or_throw",
]
