"""Every Redis key string in the codebase, and the UTC period helpers that name them.

Keys are pure functions of their inputs so a key written by the API is found by the worker,
the sweeper and the usage endpoint alike. Nothing else may format a Redis key.

Every component passed in (user id, draft id, Idempotency-Key, lease id, provider, …) is
percent-encoded before it joins a key (``encode_component``): ``:`` never survives inside
a component, so two distinct inputs can never spell one key (SPEC §9), whatever a
token's ``sub`` or a client's key contains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

__all__ = [
    "Keys",
    "encode_component",
    "hour_end",
    "hour_key",
    "hour_label",
    "month_end",
    "month_key",
    "month_key_from_label",
    "month_label",
    "seconds_until",
    "seconds_until_hour_end",
    "seconds_until_month_end",
]


# Unreserved characters plus "@" and "|" (common in identity-provider subs) stay as they
# are, so ordinary ids keep readable keys; "%" itself is encoded, so decoding is unique.
_SAFE = "@|"


def encode_component(value: str) -> str:
    """``value`` percent-encoded (UTF-8; lone surrogates kept distinct): injective, no ``:``."""
    return quote(value, safe=_SAFE, encoding="utf-8", errors="surrogatepass")


def _utc(dt: datetime) -> datetime:
    """``dt`` in UTC; a naive datetime is taken to be UTC already."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def month_key(dt: datetime) -> str:
    """``yyyymm`` of the UTC month containing ``dt`` (used inside keys)."""
    return _utc(dt).strftime("%Y%m")


def month_label(dt: datetime) -> str:
    """``YYYY-MM`` of the UTC month containing ``dt`` (SPEC's period, UsageSource's month)."""
    return _utc(dt).strftime("%Y-%m")


def month_key_from_label(label: str) -> str:
    """``YYYY-MM`` → ``yyyymm``; raises ``ValueError`` on anything else."""
    return datetime.strptime(label, "%Y-%m").strftime("%Y%m")


def hour_key(dt: datetime) -> str:
    """``yyyymmddhh`` of the UTC hour containing ``dt``."""
    return _utc(dt).strftime("%Y%m%d%H")


hour_label = hour_key
"""UsageSource's hour is the same ``YYYYMMDDHH`` string as the key part."""


def month_end(dt: datetime) -> datetime:
    """First instant of the next UTC month (exclusive end of ``dt``'s month)."""
    d = _utc(dt)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def hour_end(dt: datetime) -> datetime:
    """First instant of the next UTC hour."""
    d = _utc(dt).replace(minute=0, second=0, microsecond=0)
    return d + timedelta(hours=1)


def seconds_until(end: datetime, now: datetime) -> int:
    """Whole seconds from ``now`` to ``end``, rounded up, at least 1 (a Retry-After value)."""
    return max(1, math.ceil((_utc(end) - _utc(now)).total_seconds()))


def seconds_until_month_end(now: datetime) -> int:
    """Whole seconds (rounded up) until the UTC month of ``now`` ends."""
    return seconds_until(month_end(now), now)


def seconds_until_hour_end(now: datetime) -> int:
    """Whole seconds (rounded up) until the UTC hour of ``now`` ends."""
    return seconds_until(hour_end(now), now)


_e = encode_component


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builders under one prefix (``REDIS_KEY_PREFIX``; tests use a per-run prefix)."""

    prefix: str = "app"

    def gen_used(self, user_id: str, yyyymm: str) -> str:
        """Monthly generations charged (the pool)."""
        return f"{self.prefix}:usage:{_e(user_id)}:gen_used:{_e(yyyymm)}"

    def gen_hour(self, user_id: str, yyyymmddhh: str) -> str:
        """Hourly generations charged (the burst limit)."""
        return f"{self.prefix}:burst:{_e(user_id)}:gen_hour:{_e(yyyymmddhh)}"

    def full_regen_used(self, user_id: str, yyyymm: str) -> str:
        """Full regenerations charged this month."""
        return f"{self.prefix}:usage:{_e(user_id)}:full_regen_used:{_e(yyyymm)}"

    def regen_cooldown(self, user_id: str, draft_id: str) -> str:
        """Per-draft regeneration cooldown marker."""
        return f"{self.prefix}:cooldown:{_e(user_id)}:regen:{_e(draft_id)}"

    def user_leases(self, user_id: str) -> str:
        """The user's concurrency semaphore (sorted set: lease id → expiry ms)."""
        return f"{self.prefix}:conc:{_e(user_id)}:leases"

    def lease(self, lease_id: str) -> str:
        """The lease record (hash: holder, semaphores held, counters charged)."""
        return f"{self.prefix}:conc:lease:{_e(lease_id)}"

    def provider(self, provider: str, model: str, lane: str) -> str:
        """The provider semaphore of one (provider, model, lane)."""
        return f"{self.prefix}:conc:provider:{_e(provider)}:{_e(model)}:{_e(lane)}"

    def circuit(self, provider: str, model: str) -> str:
        """A provider's circuit breaker state (hash: state, opened_at, trial, trial_until)."""
        return f"{self.prefix}:circuit:{_e(provider)}:{_e(model)}"

    def circuit_failures(self, provider: str, model: str) -> str:
        """A provider's recent failures (sorted set: failure id → time ms), for its circuit."""
        return f"{self.prefix}:circuit:{_e(provider)}:{_e(model)}:failures"

    def idem(self, user_id: str, scope: str, idem_key: str) -> str:
        """The idempotency record of one (user, endpoint scope, Idempotency-Key)."""
        return f"{self.prefix}:idem:{_e(user_id)}:{_e(scope)}:{_e(idem_key)}"

    def plan_effective(self, user_id: str) -> str:
        """Plan cache: the base plan name, or ``none``."""
        return f"{self.prefix}:user:{_e(user_id)}:plan_effective"

    def boost_until(self, user_id: str) -> str:
        """Plan cache: Pro Boost expiry in epoch ms, or ``0``."""
        return f"{self.prefix}:boost:{_e(user_id)}:pro_until"

    def qstash_token(self, jti: str) -> str:
        """A QStash signature already accepted (its ``jti``), kept for the token's life."""
        return f"{self.prefix}:qstash:jti:{_e(jti)}"

    def credits(self, user_id: str) -> str:
        """The user's packs and grants (hash: per credit its expiry, limit, kind and use)."""
        return f"{self.prefix}:credits:{_e(user_id)}"

    def refund_marker(self, generation_id: str) -> str:
        """Set once when a generation's unit is refunded (refunds happen exactly once)."""
        return f"{self.prefix}:refund:{_e(generation_id)}"

    def generation_status(self, generation_id: str) -> str:
        """The last status a generation moved to, published for its event streams."""
        return f"{self.prefix}:gen:status:{_e(generation_id)}"

    def month_counters(self, user_id: str, now: datetime) -> tuple[str, str, str]:
        """(monthly, hourly, full-regen) counter keys of the periods containing ``now``."""
        mk = month_key(now)
        return (
            self.gen_used(user_id, mk),
            self.gen_hour(user_id, hour_key(now)),
            self.full_regen_used(user_id, mk),
        )

    def user_state(
        self,
        user_id: str,
        now: datetime,
        *,
        months: Iterable[str] = (),
        hours: Iterable[str] = (),
        draft_ids: Iterable[str] = (),
        idempotency: Iterable[tuple[str, str]] = (),
    ) -> list[str]:
        """Every key holding state of ``user_id`` (account deletion drops them all).

        User keys are named by the user plus a period, a draft or an Idempotency-Key,
        and Upstash cannot enumerate keys cheaply, so the caller supplies those (read
        from Postgres): ``months`` as ``YYYY-MM``, ``hours`` as ``yyyymmddhh``. The
        current and previous month and hour are always included (usage reads seed
        counters without any generation). Lease records and semaphore members are not
        here: they are released lease by lease.
        """
        last_month = _utc(now).replace(day=1) - timedelta(days=1)
        month_keys = {month_key(now), month_key(last_month)}
        month_keys |= {month_key_from_label(m) for m in months}
        hour_keys = {hour_key(now), hour_key(now - timedelta(hours=1)), *hours}
        found = [self.plan_effective(user_id), self.boost_until(user_id), self.credits(user_id)]
        found.append(self.user_leases(user_id))
        for mk in sorted(month_keys):
            found += [self.gen_used(user_id, mk), self.full_regen_used(user_id, mk)]
        found += [self.gen_hour(user_id, hk) for hk in sorted(hour_keys)]
        found += [self.regen_cooldown(user_id, d) for d in sorted(set(draft_ids))]
        found += [self.idem(user_id, s, k) for s, k in sorted(set(idempotency))]
        return found
