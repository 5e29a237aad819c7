"""What several script modules share: how a KEYS/ARGV dataclass becomes the list Redis
receives, script time, period expiries, the lease slots, and the ``need_plan`` /
``need_seed`` round (plan fill and counter seeds) of ``admission`` and ``usage``.

A script's own KEYS, ARGV, reply type, builder and parser live in its module beside this
one (``admission.py`` for ``lua/admission.lua`` …).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.enforcement.ports import PlanInfo
from shared.enforcement.values import LeaseRef, StatusNote, StoredResponse
from shared.redis.keys import Keys, hour_end, month_end

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "CONCURRENCY_RETRY_AFTER_S",
    "PERIOD_GRACE_S",
    "AdmitConfig",
    "Need",
    "PlanFill",
    "ScriptSlots",
    "epoch_ms",
    "fence_arg",
    "from_epoch_ms",
    "hour_expireat_s",
    "lease_sem_keys",
    "month_expireat_s",
    "opt",
    "parse_need",
    "parse_stored",
    "refund_marker_expireat_s",
    "status_key",
    "wire",
]

PERIOD_GRACE_S = 86_400
"""SPEC §2: counters outlive their period by a day, so a late refund still finds them."""

CONCURRENCY_RETRY_AFTER_S = 5
"""A slot frees when a job ends (seconds to tens of seconds): polling again soon is cheap."""


@dataclass(frozen=True, slots=True)
class ScriptSlots:
    """A script of ``lua/`` and its KEYS and ARGV dataclasses.

    Field order is slot order: field *i* is ``KEYS[i + 1]`` (or ``ARGV[i + 1]``) of the
    script's header, and each field's name begins with that slot's name in the header
    (``ARGV[15] lease TTL, ms`` is ``lease_ttl_ms``). ``tests/unit/test_lua_contract.py``
    parses every header against them and fails when a slot is added, dropped or moved on
    one side only. Every value is already the string Redis receives; ``wire()`` is the
    list sent. A variadic slot (``KEYS[2..n]``) is one tuple field, last, spread in place.
    """

    name: str
    keys: type[DataclassInstance]
    args: type[DataclassInstance]


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


def opt(value: int | None) -> str:
    """An optional number as an ARGV slot ("" = not passed)."""
    return "" if value is None else str(value)


# ---- time ----------------------------------------------------------------------------------


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the epoch."""
    return int(dt.timestamp() * 1000)


def from_epoch_ms(ms: int) -> datetime:
    """UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def month_expireat_s(now: datetime) -> int:
    """EXPIREAT of the monthly counters of ``now``'s month: its end plus grace."""
    return int(month_end(now).timestamp()) + PERIOD_GRACE_S


def hour_expireat_s(now: datetime) -> int:
    """EXPIREAT of the hourly counter of ``now``'s hour: its end plus grace."""
    return int(hour_end(now).timestamp()) + PERIOD_GRACE_S


def refund_marker_expireat_s(month: str) -> int:
    """The marker outlives the charged month's counters, so a refund never repeats."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    return month_expireat_s(start) + PERIOD_GRACE_S


# ---- the lease scripts (finish, refresh_lease, semaphore_release) --------------------------


def lease_sem_keys(keys: Keys, lease: LeaseRef) -> list[str]:
    """The two semaphores a lease holds: the user's, then the provider's."""
    return [
        keys.user_leases(lease.user_id),
        keys.provider(lease.provider, lease.model, lease.lane.value),
    ]


def status_key(keys: Keys, lease: LeaseRef, note: StatusNote | None) -> str:
    """The status slot of the lease scripts: the noted generation's key, or (nothing to
    publish, the script leaves it alone) the lease's own generation's."""
    return keys.generation_status(note.generation_id if note else lease.lease_id)


def fence_arg(lease: LeaseRef) -> str:
    """The claim-number argument of the lease scripts ("" = not fenced)."""
    return "" if lease.attempt is None else str(lease.attempt)


def parse_stored(reply: Sequence[Any]) -> StoredResponse:
    """The stored response of a ``{"replay", status, body, headers_json}`` reply."""
    headers = json.loads(str(reply[3]) or "{}")
    return StoredResponse(
        int(reply[1]), str(reply[2]), {str(k): str(v) for k, v in headers.items()}
    )


# ---- need_plan / need_seed (admission, usage, counter_with_limit) --------------------------


@dataclass(frozen=True, slots=True)
class PlanFill:
    """Plan-cache values to write: base plan (``none``) and boost expiry ms (0 = none)."""

    base_plan: str
    boost_until_ms: int

    @classmethod
    def of(cls, info: PlanInfo) -> PlanFill:
        """The cache form of ``info``."""
        boost = epoch_ms(info.boost_expires_at) if info.boost_expires_at else 0
        return cls(info.base_plan.value if info.base_plan else "none", boost)

    @staticmethod
    def args(fill: PlanFill | None) -> tuple[str, str]:
        """The (plan fill, boost fill) ARGV slots ("" both: not loaded)."""
        return ("", "") if fill is None else (fill.base_plan, str(fill.boost_until_ms))


@dataclass(frozen=True, slots=True)
class Need:
    """The script needs the plan and/or counter seeds before it can decide."""

    plan: bool
    counters: frozenset[str]


def parse_need(reply: Sequence[Any]) -> Need | None:
    """A ``need_plan`` / ``need_seed`` reply as a ``Need``; ``None`` for anything else."""
    if reply[0] not in ("need_plan", "need_seed"):
        return None
    missing = frozenset(part for part in str(reply[1]).split(",") if part)
    return Need(plan=reply[0] == "need_plan", counters=missing)


@dataclass(frozen=True, slots=True)
class AdmitConfig:
    """The deployment's numbers every admission (and usage read) passes along."""

    plan_table: str
    plan_cache_ttl_s: int
    lease_ttl_ms: int
    provider_cap: int
    idempotency_ttl_s: int
    time_offset_ms: int = 0
