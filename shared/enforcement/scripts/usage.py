"""``lua/usage.lua``: the caller's usage in one read (GET /v1/usage) — KEYS, ARGV, the
snapshot it answers and its parser (limits from the effective plan in plans.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.enforcement.ports import Truth
from shared.enforcement.scripts.common import (
    AdmitConfig,
    Need,
    PlanFill,
    ScriptSlots,
    from_epoch_ms,
    hour_expireat_s,
    month_expireat_s,
    opt,
    parse_need,
    wire,
)
from shared.enforcement.values import Meter
from shared.plans import PLANS, PlanName, resolve_effective_plan
from shared.redis.keys import Keys, hour_end, month_end, month_label

__all__ = [
    "SCRIPT",
    "CreditBalance",
    "UsageArgs",
    "UsageKeys",
    "UsageSnapshot",
    "parse_credits",
    "parse_usage",
    "usage_args",
    "usage_keys",
]


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


SCRIPT = ScriptSlots("usage", UsageKeys, UsageArgs)


def usage_keys(keys: Keys, user_id: str, now: datetime) -> list[str]:
    """KEYS of ``usage.lua``."""
    month, hour, full = keys.month_counters(user_id, now)
    slots = UsageKeys(
        plan_cache_base=keys.plan_effective(user_id),
        plan_cache_boost=keys.boost_until(user_id),
        monthly_counter=month,
        hourly_counter=hour,
        full_regen_counter=full,
        user_semaphore=keys.user_leases(user_id),
        credits=keys.credits(user_id),
    )
    return wire(slots)


def usage_args(
    now: datetime, cfg: AdmitConfig, fill: PlanFill | None, seeds: Truth | None
) -> list[str]:
    """ARGV of ``usage.lua``."""
    seeds = seeds or Truth()
    plan_fill, boost_fill = PlanFill.args(fill)
    slots = UsageArgs(
        time_offset_ms=str(cfg.time_offset_ms),
        plan_fill=plan_fill,
        boost_fill=boost_fill,
        plan_cache_ttl_s=str(cfg.plan_cache_ttl_s),
        monthly_seed=opt(seeds.month),
        hourly_seed=opt(seeds.hour),
        full_seed=opt(seeds.full),
        monthly_expireat_s=str(month_expireat_s(now)),
        hourly_expireat_s=str(hour_expireat_s(now)),
        credits_seed=seeds.credits or "",
    )
    return wire(slots)


@dataclass(frozen=True, slots=True)
class CreditBalance:
    """One pack or grant as the admission sees it (``limit`` = units still granted)."""

    credit_id: str
    kind: str
    expires_at: datetime
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """GET /v1/usage: the caller's month, hour, full regens and concurrency."""

    plan: PlanName | None
    effective_plan: PlanName | None
    boost_expires_at: datetime | None
    period: str
    generations: Meter
    hourly: Meter
    full_regens: Meter
    concurrency: Meter
    credits: tuple[CreditBalance, ...] = ()  # unexpired, earliest expiry first


def _plan_or_none(name: str) -> PlanName | None:
    return None if name == "none" else PlanName(name)


def parse_credits(encoded: str, now_ms: int) -> tuple[CreditBalance, ...]:
    """The credits of a ``credits_encode`` string not expired and not wholly taken back
    (limit 0), earliest expiry first."""
    out: list[CreditBalance] = []
    for part in encoded.split(";"):
        if not part:
            continue
        credit_id, exp, limit, used, kind = part.split(":")
        if int(exp) > now_ms and int(limit) > 0:
            out.append(
                CreditBalance(credit_id, kind, from_epoch_ms(int(exp)), int(limit), int(used))
            )
    return tuple(sorted(out, key=lambda c: (c.expires_at, c.credit_id)))


def parse_usage(reply: Sequence[Any], now: datetime) -> UsageSnapshot | Need:
    """The typed reply of ``usage.lua``; limits of the effective plan (0 without a plan)."""
    need = parse_need(reply)
    if need is not None:
        return need
    base, boost_ms, now_ms = _plan_or_none(str(reply[1])), int(reply[2]), int(reply[7])
    effective = resolve_effective_plan(base, from_epoch_ms(boost_ms), from_epoch_ms(now_ms))
    plan = PLANS.get(effective) if effective else None
    return UsageSnapshot(
        plan=base,
        effective_plan=effective,
        boost_expires_at=from_epoch_ms(boost_ms) if boost_ms > now_ms else None,
        period=month_label(now),
        generations=Meter(int(reply[3]), plan.generations_per_month if plan else 0, month_end(now)),
        hourly=Meter(int(reply[4]), plan.generations_per_hour if plan else 0, hour_end(now)),
        full_regens=Meter(int(reply[5]), plan.full_regens_per_month if plan else 0, month_end(now)),
        concurrency=Meter(int(reply[6]), plan.concurrent_jobs if plan else 0),
        credits=parse_credits(str(reply[8]), now_ms),
    )
