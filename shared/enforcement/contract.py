"""The Lua contract: each script's KEYS and ARGV as one frozen dataclass per list.

Field order is slot order: field *i* is ``KEYS[i + 1]`` (or ``ARGV[i + 1]``) of the
script's header, and each field's name begins with that slot's name in the header
(``ARGV[15] lease TTL, ms`` is ``lease_ttl_ms``). ``tests/unit/test_lua_contract.py``
parses every header below and fails when a slot is added, dropped or moved on one side
only. Every value is already the string Redis receives; ``wire()`` is the list sent. A
variadic slot (``KEYS[2..n]``) is one tuple field, last, spread in place by ``wire()``.
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
    "CircuitArgs",
    "CircuitKeys",
    "CooldownArgs",
    "CooldownKeys",
    "CounterArgs",
    "CounterKeys",
    "CreditSetArgs",
    "CreditSetKeys",
    "FinishArgs",
    "FinishKeys",
    "IdemBeginArgs",
    "IdemCompleteArgs",
    "IdemDropArgs",
    "IdemKeys",
    "IdemPeekArgs",
    "RefreshLeaseArgs",
    "RefreshLeaseKeys",
    "RefundArgs",
    "RefundKeys",
    "SemaphoreAcquireArgs",
    "SemaphoreAcquireKeys",
    "SemaphoreReleaseArgs",
    "SemaphoreReleaseKeys",
    "UsageArgs",
    "UsageKeys",
    "wire",
]


def wire(slots: DataclassInstance) -> list[str]:
    """The values of ``slots`` in field order: the KEYS or ARGV list a script receives."""
    out: list[str] = []
    for f in fields(slots):
        value = getattr(slots, f.name)
        if isinstance(value, tuple):
            out.extend(value)
        else:
            out.append(str(value))
    return out


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
    credits: str


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
    credits_seed: str
    notice_marks: str
    low_credit_mark: str


@dataclass(frozen=True, slots=True)
class UsageKeys:
    plan_cache_base: str
    plan_cache_boost: str
    monthly_counter: str
    hourly_counter: str
    full_regen_counter: str
    user_semaphore: str
    credits: str


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
    credits_seed: str


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
    credits: str
    generation_status: str


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
    credit_id: str
    status: str
    status_ttl_ms: str


@dataclass(frozen=True, slots=True)
class RefundKeys:
    refund_marker: str
    monthly_counter: str
    full_regen_counter: str
    credits: str


@dataclass(frozen=True, slots=True)
class RefundArgs:
    marker_expireat_s: str
    full_regen: str
    credit_id: str


@dataclass(frozen=True, slots=True)
class CreditSetKeys:
    credits: str


@dataclass(frozen=True, slots=True)
class CreditSetArgs:
    credit_id: str
    expires_ms: str
    limit_wanted: str
    kind: str


# -- the single-limit primitives and the idempotency scripts -------------------------------


@dataclass(frozen=True, slots=True)
class CooldownKeys:
    cooldown_marker: str


@dataclass(frozen=True, slots=True)
class CooldownArgs:
    time_offset_ms: str
    cooldown_ms: str


@dataclass(frozen=True, slots=True)
class CounterKeys:
    counter: str


@dataclass(frozen=True, slots=True)
class CounterArgs:
    limit: str
    n: str
    expireat_s: str
    seed: str


@dataclass(frozen=True, slots=True)
class SemaphoreAcquireKeys:
    semaphore: str


@dataclass(frozen=True, slots=True)
class SemaphoreAcquireArgs:
    time_offset_ms: str
    lease_id: str
    limit: str
    lease_ttl_ms: str


@dataclass(frozen=True, slots=True)
class SemaphoreReleaseKeys:
    lease_record: str
    semaphores: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SemaphoreReleaseArgs:
    lease_id: str
    fence: str


@dataclass(frozen=True, slots=True)
class RefreshLeaseKeys:
    user_semaphore: str
    provider_semaphore: str
    lease_record: str
    delivery_token: str
    generation_status: str


@dataclass(frozen=True, slots=True)
class RefreshLeaseArgs:
    time_offset_ms: str
    lease_id: str
    lease_ttl_ms: str
    user_concurrency_limit: str
    provider_cap: str
    fence: str
    token_ttl_ms: str
    status: str
    status_ttl_ms: str


@dataclass(frozen=True, slots=True)
class IdemKeys:
    """KEYS of all three idempotency scripts."""

    idempotency_record: str


@dataclass(frozen=True, slots=True)
class IdemBeginArgs:
    request_fingerprint: str
    record_ttl_s: str


@dataclass(frozen=True, slots=True)
class IdemPeekArgs:
    request_fingerprint: str


@dataclass(frozen=True, slots=True)
class IdemCompleteArgs:
    request_fingerprint: str
    http_status: str
    body: str
    headers_json: str
    record_ttl_s: str


@dataclass(frozen=True, slots=True)
class IdemDropArgs:
    request_fingerprint: str


@dataclass(frozen=True, slots=True)
class CircuitKeys:
    circuit_state: str
    circuit_failures: str


@dataclass(frozen=True, slots=True)
class CircuitArgs:
    time_offset_ms: str
    op: str
    caller: str
    failures_to_open: str
    window_ms: str
    cooldown_ms: str
    trial_ttl_ms: str


SCRIPT_SLOTS: dict[str, tuple[type[DataclassInstance], type[DataclassInstance]]] = {
    "admission": (AdmissionKeys, AdmissionArgs),
    "usage": (UsageKeys, UsageArgs),
    "finish": (FinishKeys, FinishArgs),
    "refund": (RefundKeys, RefundArgs),
    "credit_set": (CreditSetKeys, CreditSetArgs),
    "cooldown": (CooldownKeys, CooldownArgs),
    "counter_with_limit": (CounterKeys, CounterArgs),
    "semaphore_acquire": (SemaphoreAcquireKeys, SemaphoreAcquireArgs),
    "semaphore_release": (SemaphoreReleaseKeys, SemaphoreReleaseArgs),
    "refresh_lease": (RefreshLeaseKeys, RefreshLeaseArgs),
    "idem_begin": (IdemKeys, IdemBeginArgs),
    "idem_peek": (IdemKeys, IdemPeekArgs),
    "idem_complete": (IdemKeys, IdemCompleteArgs),
    "idem_drop": (IdemKeys, IdemDropArgs),
    "circuit": (CircuitKeys, CircuitArgs),
}
"""Every script in ``lua/`` and its (KEYS, ARGV) dataclasses."""
