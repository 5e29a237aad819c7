"""``lua/refresh_lease.lua``: record a delivery's token once, then extend a held lease or
re-take an expired one within the caps — KEYS, ARGV, the ``LeaseStatus`` it answers, and
the 503 a busy lease becomes at the boundary (``enforce_lease``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.enforcement.scripts.admission import RefusalCode
from shared.enforcement.scripts.common import (
    CONCURRENCY_RETRY_AFTER_S,
    ScriptSlots,
    fence_arg,
    from_epoch_ms,
    lease_sem_keys,
    status_key,
    wire,
)
from shared.enforcement.values import LeaseRef, StatusNote
from shared.errors import ServiceUnavailable
from shared.redis.keys import Keys

if TYPE_CHECKING:
    from shared.queue.signing import TokenUse

__all__ = [
    "SCRIPT",
    "LeaseStatus",
    "RefreshLeaseArgs",
    "RefreshLeaseKeys",
    "enforce_lease",
    "parse_refresh",
    "refresh_lease_args",
    "refresh_lease_keys",
]


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


SCRIPT = ScriptSlots("refresh_lease", RefreshLeaseKeys, RefreshLeaseArgs)


def refresh_lease_keys(
    keys: Keys, lease: LeaseRef, token: TokenUse | None, note: StatusNote | None
) -> list[str]:
    """KEYS of ``refresh_lease.lua``."""
    user_sem, provider_sem = lease_sem_keys(keys, lease)
    slots = RefreshLeaseKeys(
        user_semaphore=user_sem,
        provider_semaphore=provider_sem,
        lease_record=keys.lease(lease.lease_id),
        # Without a token the slot still names a real key; the script leaves it alone.
        delivery_token=keys.qstash_token(token.token_id if token else "-"),
        generation_status=status_key(keys, lease, note),
    )
    return wire(slots)


def refresh_lease_args(
    lease: LeaseRef,
    *,
    time_offset_ms: int,
    lease_ttl_ms: int,
    user_limit: int,
    provider_cap: int,
    token: TokenUse | None,
    note: StatusNote | None,
) -> list[str]:
    """ARGV of ``refresh_lease.lua``."""
    slots = RefreshLeaseArgs(
        time_offset_ms=str(time_offset_ms),
        lease_id=lease.lease_id,
        lease_ttl_ms=str(lease_ttl_ms),
        user_concurrency_limit=str(user_limit),
        provider_cap=str(provider_cap),
        fence=fence_arg(lease),
        token_ttl_ms=str(token.ttl_s * 1000) if token else "",
        status=note.status if note else "",
        status_ttl_ms=str(note.ttl_ms) if note else "",
    )
    return wire(slots)


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """``held`` (extended), ``reacquired`` (had expired, taken again), ``busy``,
    ``superseded`` (a newer claim owns it) or ``replayed`` (the delivery's token was used
    before: nothing written)."""

    state: str
    expires_at: datetime | None = None
    code: RefusalCode | None = None
    retry_after_s: int | None = None

    @property
    def ok(self) -> bool:
        """True when the job may run."""
        return self.state in ("held", "reacquired")

    @property
    def superseded(self) -> bool:
        """A newer claim of the same job owns the lease (this delivery was taken over)."""
        return self.state == "superseded"

    @property
    def replayed(self) -> bool:
        """The signed delivery's token was presented before: refuse it (401)."""
        return self.state == "replayed"


def parse_refresh(reply: Sequence[Any]) -> LeaseStatus:
    """The typed reply of ``refresh_lease.lua``."""
    if reply[0] == "busy":
        code = RefusalCode(str(reply[1]))
        return LeaseStatus("busy", code=code, retry_after_s=CONCURRENCY_RETRY_AFTER_S)
    if reply[0] in ("superseded", "replayed"):
        return LeaseStatus(str(reply[0]))
    return LeaseStatus(str(reply[0]), expires_at=from_epoch_ms(int(reply[1])))


def enforce_lease(status: LeaseStatus) -> LeaseStatus:
    """``status`` when the job may run; a 503 with Retry-After when its slots are taken."""
    if status.ok:
        return status
    busy = status.code == RefusalCode.PROVIDER_BUSY
    code = RefusalCode.PROVIDER_BUSY.value if busy else "SERVICE_UNAVAILABLE"
    raise ServiceUnavailable(code=code, retry_after=status.retry_after_s)
