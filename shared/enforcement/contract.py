"""The Lua contract: each script's KEYS and ARGV as one frozen dataclass per list.

Field order is slot order: field *i* is ``KEYS[i + 1]`` (or ``ARGV[i + 1]``) of the
script's header, and each field's name begins with that slot's name in the header
(``ARGV[15] lease TTL, ms`` is ``lease_ttl_ms``). ``tests/unit/test_lua_contract.py``
parses every header below and fails when a slot is added, dropped or moved on one side
only. Every value is already the string Redis receives; ``wire()`` is the list sent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "SCRIPT_SLOTS",
    "AdmissionArgs",
    "AdmissionKeys",
    "FinishArgs",
    "FinishKeys",
    "RefundArgs",
    "RefundKeys",
    "UsageArgs",
    "UsageKeys",
    "wire",
]


def wire(slots: DataclassInstance) -> list[str]:
    """The values of ``slots`` in field order: the KEYS or ARGV list a script receives."""
    return [str(getattr(slots, f.name)) for f in fields(slots)]


@dataclass(frozen=True, slots=True)
class AdmissionKeys:
    idempotency_record: str
    plan_cache_base: str
    plan_cache_boost: str
    monthly_counter: str
    hourly_counter: str
    full_regen_counter: str
    regen_cooldown: str
    user_semaphore: str
    provider_semaphore: str
    lease_record: str


@dataclass(frozen=True, slots=True)
class AdmissionArgs:
    time_offset_ms: str
    scope: str
    lease_id: str
    variants_requested: str
    request_fingerprint: str
    plan_table: str
    plan_fill: str
    boost_fill: str
    plan_cache_ttl_s: str
    monthly_seed: str
    hourly_seed: str
    full_seed: str
    monthly_counters_expireat_s: str
    hourly_counter_expireat_s: str
    lease_ttl_ms: str
    provider_cap: str
    idempotency_record_ttl_s: str


@dataclass(frozen=True, slots=True)
class UsageKeys:
    plan_cache_base: str
    plan_cache_boost: str
    monthly_counter: str
    hourly_counter: str
    full_regen_counter: str
    user_semaphore: str


@dataclass(frozen=True, slots=True)
class UsageArgs:
    time_offset_ms: str
    plan_fill: str
    boost_fill: str
    plan_cache_ttl_s: str
    monthly_seed: str
    hourly_seed: str
    full_seed: str
    monthly_expireat_s: str
    hourly_expireat_s: str


@dataclass(frozen=True, slots=True)
class FinishKeys:
    user_semaphore: str
    provider_semaphore: str
    lease_record: str
    refund_marker: str
    monthly_counter: str
    full_regen_counter: str
    idempotency_record: str
    regen_cooldown: str
    hourly_counter: str


@dataclass(frozen=True, slots=True)
class FinishArgs:
    lease_id: str
    refund: str
    full_regen: str
    refund_marker_expireat_s: str
    fingerprint: str
    clear_cooldown: str
    fence: str
    refund_hour: str


@dataclass(frozen=True, slots=True)
class RefundKeys:
    refund_marker: str
    monthly_counter: str
    full_regen_counter: str


@dataclass(frozen=True, slots=True)
class RefundArgs:
    marker_expireat_s: str
    full_regen: str


SCRIPT_SLOTS: dict[str, tuple[type[DataclassInstance], type[DataclassInstance]]] = {
    "admission": (AdmissionKeys, AdmissionArgs),
    "usage": (UsageKeys, UsageArgs),
    "finish": (FinishKeys, FinishArgs),
    "refund": (RefundKeys, RefundArgs),
}
"""The scripts whose KEYS/ARGV are typed here (the single-limit primitives are built
inline in ``service.py``)."""
