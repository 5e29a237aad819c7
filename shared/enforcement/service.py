"""``Enforcer``: every limit decision of the product, each one Lua call in the common case.

The rare paths cost one extra trip: a plan missing from the cache (``need_plan``) or a
usage counter missing in Redis (``need_seed``, a new period or lost data) make the caller
load the truth from Postgres and call again with it in ARGV; the script writes it.

``time_offset_ms`` moves script time (Redis ``TIME``) forward; it is 0 in production and
lets tests expire leases, cooldowns and boosts without sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from shared.clock import utcnow
from shared.enforcement.contract import (
    CooldownArgs,
    CooldownKeys,
    CounterArgs,
    CounterKeys,
    CreditSetArgs,
    CreditSetKeys,
    IdemBeginArgs,
    IdemCompleteArgs,
    IdemDropArgs,
    IdemKeys,
    IdemPeekArgs,
    RefreshLeaseArgs,
    RefreshLeaseKeys,
    SemaphoreAcquireArgs,
    SemaphoreAcquireKeys,
    SemaphoreReleaseArgs,
    SemaphoreReleaseKeys,
    wire,
)
from shared.enforcement.types import (
    Admission,
    AdmissionRequest,
    AdmissionTicket,
    ChargeRef,
    CooldownResult,
    CounterResult,
    IdempotencyRef,
    IdempotencyState,
    LeaseRef,
    LeaseStatus,
    PlanSource,
    SemaphoreResult,
    StatusNote,
    StoredResponse,
    Truth,
    TruthSource,
    UsageSnapshot,
    UsageSource,
)
from shared.enforcement.wire import (
    AdmitConfig,
    Need,
    PlanFill,
    Seeds,
    admission_args,
    admission_keys,
    epoch_ms,
    fence_arg,
    finish_args,
    finish_keys,
    hour_expireat_s,
    lease_sem_keys,
    month_expireat_s,
    parse_admission,
    parse_idempotency,
    parse_refresh,
    parse_usage,
    plan_table,
    refund_args,
    refund_keys,
    status_key,
    usage_args,
    usage_keys,
)
from shared.errors import ServiceUnavailable
from shared.plans import PLANS, Lane, Plan, PlanName, resolve_effective_plan
from shared.redis.client import RedisPort
from shared.redis.keys import Keys, hour_end, hour_label, month_end, month_label

if TYPE_CHECKING:
    from shared.queue.signing import TokenUse

__all__ = ["Enforcer"]

_T = TypeVar("_T")
_MAX_TRIPS = 4
"""need_plan and need_seed arrive together, so two trips settle; the credits are asked for
only once the plan is known and the pool is spent (a third); a fourth covers a counter
that expired between them. More would mean a bug, and paid limits then fail closed."""


class Enforcer:
    """Admission, leases, refunds, idempotency and usage over one ``RedisPort``."""

    def __init__(
        self,
        redis: RedisPort,
        keys: Keys,
        plans: PlanSource,
        usage: UsageSource,
        *,
        lease_ttl_s: int,
        plan_cache_ttl_s: int,
        provider_caps: Mapping[Lane, int],
        idempotency_ttl_s: int = 86_400,
        truth: TruthSource | None = None,
        plans_table: Mapping[PlanName, Plan] = PLANS,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._plans = plans
        self._usage = usage
        # One read of the plan and the missing counts together, when the adapter can;
        # else one read per source (a first request of a period pays for each).
        self._truth = truth
        self._lease_ttl_ms = lease_ttl_s * 1000
        self._plan_cache_ttl_s = plan_cache_ttl_s
        self._provider_caps = dict(provider_caps)
        self._idempotency_ttl_s = idempotency_ttl_s
        # The admission's plan table (tests may lift one limit to isolate another).
        self._plan_table = plan_table(plans_table)
        self.time_offset_ms = 0

    # ---- admission ---------------------------------------------------------------------

    def admit(self, req: AdmissionRequest) -> Admission:
        """Decide ``req`` atomically; a refusal consumes nothing. ``ValueError`` on bad input."""
        _validate(req)
        keys = admission_keys(self._keys, req)
        cfg = self._config(req.lane)

        def attempt(fill: PlanFill | None, seeds: Seeds | None) -> Admission | Need:
            reply = self._redis.run("admission", keys, admission_args(req, cfg, fill, seeds))
            return parse_admission(reply, req)

        # mypy solves _T from ``Admission | Need`` as the join of Admission's members
        # (object), not their union; _settle returns whatever attempt returns but Need.
        return cast(Admission, self._settle(req.user_id, req.now, attempt))

    def abort(self, ticket: AdmissionTicket) -> bool:
        """Undo an admission that produced no generation: monthly, hourly and full-regen
        units, cooldown, both leases, the pending key (SPEC §9). Idempotent."""
        return self._finish(
            ticket.lease, ticket.charge, ticket.idempotency, ticket.draft_id, ticket.hour
        )

    def finish(
        self,
        lease: LeaseRef,
        charge: ChargeRef | None = None,
        *,
        hour: str | None = None,
        note: StatusNote | None = None,
    ) -> bool:
        """End a job: refund ``charge`` (exactly once) and release ``lease``, in one call;
        a fenced ``lease`` that a newer claim owns does neither. True when refunded.

        ``hour`` ('YYYYMMDDHH', the generation's ``period_hour``): give the hourly unit
        back too, for a job that never ran (cancelled while queued); the lease record
        must name that hour as the one it charged, as for an aborted admission.
        ``note``: the job's terminal status, published in the same call (not when the
        fence refuses)."""
        return self._finish(lease, charge, None, None, hour, note)

    def _finish(
        self,
        lease: LeaseRef,
        charge: ChargeRef | None,
        idem: IdempotencyRef | None,
        draft_id: str | None = None,
        hour: str | None = None,
        note: StatusNote | None = None,
    ) -> bool:
        keys = finish_keys(self._keys, lease, charge, idem, draft_id, hour, note)
        args = finish_args(lease, charge, idem, draft_id, hour, note)
        reply = self._redis.run("finish", keys, args)
        return bool(int(reply[0]))

    def release(self, lease: LeaseRef) -> bool:
        """Release both slots of ``lease`` and drop its record; False when already released."""
        return self.release_concurrency(lease) > 0

    def refund(self, charge: ChargeRef) -> bool:
        """Give the unit back once per generation; False when it was already refunded."""
        reply = self._redis.run("refund", refund_keys(self._keys, charge), refund_args(charge))
        return bool(int(reply))

    def refresh_lease(
        self,
        lease: LeaseRef,
        plan: PlanName,
        *,
        token: TokenUse | None = None,
        note: StatusNote | None = None,
    ) -> LeaseStatus:
        """Extend a lease still held, or re-take an expired one if ``plan``'s caps allow;
        a fenced ``lease`` records its claim, or is ``superseded`` by a newer one.

        ``token``, a signed delivery's use not recorded yet, is recorded first in the
        same call (the delivery's replay check costs no trip of its own): ``replayed``
        when it was used before, and then nothing at all is written. ``note`` (the
        job's ``running``) is published in the same call once the slots are held, and
        only if no status was published before."""
        user_sem, provider_sem = lease_sem_keys(self._keys, lease)
        keys = RefreshLeaseKeys(
            user_semaphore=user_sem,
            provider_semaphore=provider_sem,
            lease_record=self._keys.lease(lease.lease_id),
            # Without a token the slot still names a real key; the script leaves it alone.
            delivery_token=self._keys.qstash_token(token.token_id if token else "-"),
            generation_status=status_key(self._keys, lease, note),
        )
        args = RefreshLeaseArgs(
            time_offset_ms=str(self.time_offset_ms),
            lease_id=lease.lease_id,
            lease_ttl_ms=str(self._lease_ttl_ms),
            user_concurrency_limit=str(PLANS[plan].concurrent_jobs),
            provider_cap=str(self._provider_caps[lease.lane]),
            fence=fence_arg(lease),
            token_ttl_ms=str(token.ttl_s * 1000) if token else "",
            status=note.status if note else "",
            status_ttl_ms=str(note.ttl_ms) if note else "",
        )
        return parse_refresh(self._redis.run("refresh_lease", wire(keys), wire(args)))

    def forget_user(
        self, user_keys: Sequence[str], leases: Sequence[LeaseRef], *, chunk: int = 500
    ) -> int:
        """Drop a deleted user's Redis state: release ``leases`` (both semaphores and the
        record, one call each), then delete ``user_keys`` (from ``Keys.user_state``) in
        ``chunk``-sized DELs. Idempotent; returns how many keys existed.

        Round trips: one per live lease (at most the plan's concurrency) plus one per
        ``chunk`` keys, never a scan of the keyspace.
        """
        for lease in leases:
            self.release(lease)
        dropped = 0
        for start in range(0, len(user_keys), chunk):
            dropped += self._redis.delete(*user_keys[start : start + chunk])
        return dropped

    def user_state_keys(self, user_id: str, now: datetime, **named: Any) -> list[str]:
        """``Keys.user_state`` under this enforcer's prefix (see there)."""
        return self._keys.user_state(user_id, now, **named)

    def set_credit(
        self, user_id: str, credit_id: str, kind: str, expires_at: datetime, limit: int
    ) -> tuple[bool, int]:
        """Write a credit into the user's cached credits (not cached: nothing to do, the
        next admission seeds it). The limit never drops below the units already charged,
        so ``limit=0`` takes away exactly the unused units. Returns (cached, used)."""
        keys = CreditSetKeys(credits=self._keys.credits(user_id))
        args = CreditSetArgs(
            credit_id=credit_id,
            expires_ms=str(epoch_ms(expires_at)),
            limit_wanted=str(limit),
            kind=kind,
        )
        reply = self._redis.run("credit_set", wire(keys), wire(args))
        return bool(int(reply[0])), int(reply[2])

    def invalidate_plan(self, user_id: str) -> None:
        """Forget the cached plan (call on every subscription or boost change)."""
        self._redis.delete(self._keys.plan_effective(user_id), self._keys.boost_until(user_id))

    def usage(self, user_id: str, now: datetime) -> UsageSnapshot:
        """The caller's month, hour, full regens and concurrency (GET /v1/usage)."""
        keys = usage_keys(self._keys, user_id, now)
        cfg = self._config(Lane.INTERACTIVE)

        def attempt(fill: PlanFill | None, seeds: Seeds | None) -> UsageSnapshot | Need:
            reply = self._redis.run("usage", keys, usage_args(now, cfg, fill, seeds))
            return parse_usage(reply, now)

        return self._settle(user_id, now, attempt)

    # ---- idempotency for endpoints without admission -----------------------------------

    def get_or_set_idempotency(
        self, user_id: str, scope: str, idem_key: str, fingerprint: str
    ) -> IdempotencyState:
        """Claim ``idem_key`` (new → pending), or say replay / in progress / reused."""
        keys = IdemKeys(idempotency_record=self._keys.idem(user_id, scope, idem_key))
        args = IdemBeginArgs(
            request_fingerprint=fingerprint, record_ttl_s=str(self._idempotency_ttl_s)
        )
        return parse_idempotency(self._redis.run("idem_begin", wire(keys), wire(args)))

    def peek_idempotency(
        self, user_id: str, scope: str, idem_key: str, fingerprint: str
    ) -> IdempotencyState:
        """What ``idem_key`` would answer now (replay / in progress / reused), or ``NEW``
        when it has no record; claims nothing (admission does, atomically)."""
        keys = IdemKeys(idempotency_record=self._keys.idem(user_id, scope, idem_key))
        args = IdemPeekArgs(request_fingerprint=fingerprint)
        return parse_idempotency(self._redis.run("idem_peek", wire(keys), wire(args)))

    def complete_idempotent(
        self, user_id: str, scope: str, idem_key: str, fingerprint: str, response: StoredResponse
    ) -> bool:
        """Store the first response for replay; False if the key belongs to another body or
        its pending record is gone (the account was deleted meanwhile, or Redis lost it)."""
        keys = IdemKeys(idempotency_record=self._keys.idem(user_id, scope, idem_key))
        args = IdemCompleteArgs(
            request_fingerprint=fingerprint,
            http_status=str(response.status),
            body=response.body,
            headers_json=json.dumps(response.headers, separators=(",", ":"), sort_keys=True),
            record_ttl_s=str(self._idempotency_ttl_s),
        )
        return bool(int(self._redis.run("idem_complete", wire(keys), wire(args))))

    def drop_idempotent(self, user_id: str, scope: str, idem_key: str, fingerprint: str) -> bool:
        """Forget a pending key (the request failed with a 5xx); a done one stays."""
        keys = IdemKeys(idempotency_record=self._keys.idem(user_id, scope, idem_key))
        args = IdemDropArgs(request_fingerprint=fingerprint)
        return bool(int(self._redis.run("idem_drop", wire(keys), wire(args))))

    # ---- thin single-limit wrappers ----------------------------------------------------

    def enforce_monthly_pool(
        self, user_id: str, n: int = 1, *, now: datetime | None = None
    ) -> CounterResult:
        """Charge ``n`` monthly units if the effective plan's pool allows."""
        now = now or utcnow()
        plan = self._effective_plan(user_id, now)
        key = self._keys.gen_used(user_id, now.strftime("%Y%m"))
        limit = plan.generations_per_month if plan else 0

        def seed() -> int:
            return self._usage.count_month(user_id, month_label(now))

        return self._counter(key, limit, n, month_expireat_s(now), seed, month_end(now))

    def enforce_hourly_burst(
        self, user_id: str, n: int = 1, *, now: datetime | None = None
    ) -> CounterResult:
        """Charge ``n`` hourly units if the effective plan's burst allows."""
        now = now or utcnow()
        plan = self._effective_plan(user_id, now)
        key = self._keys.gen_hour(user_id, hour_label(now))
        limit = plan.generations_per_hour if plan else 0

        def seed() -> int:
            return self._usage.count_hour(user_id, hour_label(now))

        return self._counter(key, limit, n, hour_expireat_s(now), seed, hour_end(now))

    def full_regen_cap(self, user_id: str, *, now: datetime | None = None) -> CounterResult:
        """Charge one full regeneration if the plan allows one (UNLIMITED: always)."""
        now = now or utcnow()
        plan = self._effective_plan(user_id, now)
        key = self._keys.full_regen_used(user_id, now.strftime("%Y%m"))
        limit = plan.full_regens_per_month if plan and plan.full_regen_allowed else 0

        def seed() -> int:
            return self._usage.count_full_regens(user_id, month_label(now))

        return self._counter(key, limit, 1, month_expireat_s(now), seed, month_end(now))

    def acquire_user_concurrency(
        self, user_id: str, lease_id: str, *, now: datetime | None = None
    ) -> SemaphoreResult:
        """Take one of the user's concurrent-job slots for ``lease_id``."""
        plan = self._effective_plan(user_id, now or utcnow())
        limit = plan.concurrent_jobs if plan else 0
        return self._acquire(self._keys.user_leases(user_id), lease_id, limit)

    def acquire_provider_concurrency(
        self, provider: str, model: str, lane: Lane, lease_id: str
    ) -> SemaphoreResult:
        """Take one in-flight slot of (provider, model, lane) for ``lease_id``."""
        key = self._keys.provider(provider, model, lane.value)
        return self._acquire(key, lease_id, self._provider_caps[lane])

    def release_concurrency(self, lease: LeaseRef) -> int:
        """Remove ``lease`` from both semaphores; the number of slots freed (0, 1 or 2).
        A fenced ``lease`` frees nothing once a newer claim owns it."""
        keys = SemaphoreReleaseKeys(
            lease_record=self._keys.lease(lease.lease_id),
            semaphores=tuple(lease_sem_keys(self._keys, lease)),
        )
        args = SemaphoreReleaseArgs(lease_id=lease.lease_id, fence=fence_arg(lease))
        return int(self._redis.run("semaphore_release", wire(keys), wire(args)))

    def check_and_set_regen_cooldown(
        self, user_id: str, draft_id: str, *, now: datetime | None = None
    ) -> CooldownResult:
        """Start the draft's regeneration cooldown unless one is running."""
        plan = self._effective_plan(user_id, now or utcnow())
        cooldown_ms = plan.regen_cooldown_s * 1000 if plan else 0
        keys = CooldownKeys(cooldown_marker=self._keys.regen_cooldown(user_id, draft_id))
        args = CooldownArgs(time_offset_ms=str(self.time_offset_ms), cooldown_ms=str(cooldown_ms))
        reply = self._redis.run("cooldown", wire(keys), wire(args))
        if int(reply[0]) == 1:
            return CooldownResult(True)
        return CooldownResult(False, -(-int(reply[1]) // 1000))

    # ---- helpers -----------------------------------------------------------------------

    def _config(self, lane: Lane) -> AdmitConfig:
        return AdmitConfig(
            plan_table=self._plan_table,
            plan_cache_ttl_s=self._plan_cache_ttl_s,
            lease_ttl_ms=self._lease_ttl_ms,
            provider_cap=self._provider_caps[lane],
            idempotency_ttl_s=self._idempotency_ttl_s,
            time_offset_ms=self.time_offset_ms,
        )

    def _settle(
        self,
        user_id: str,
        now: datetime,
        attempt: Callable[[PlanFill | None, Seeds | None], _T | Need],
    ) -> _T:
        fill: PlanFill | None = None
        seeds: Seeds | None = None
        for _ in range(_MAX_TRIPS):
            outcome = attempt(fill, seeds)
            if not isinstance(outcome, Need):
                return outcome
            truth = self._load_truth(
                user_id, now, plan=outcome.plan and fill is None, counters=outcome.counters
            )
            if truth.plan is not None:
                fill = PlanFill.of(truth.plan)
            seeds = Seeds(
                month=truth.month, hour=truth.hour, full=truth.full, credits=truth.credits
            )
        raise ServiceUnavailable("Usage counters could not be settled; retry shortly.")

    def _load_truth(
        self, user_id: str, now: datetime, *, plan: bool, counters: frozenset[str]
    ) -> Truth:
        if self._truth is not None:
            return self._truth.load_truth(user_id, now, plan=plan, counters=counters)
        month = month_label(now)
        return Truth(
            plan=self._plans.load_plan(user_id) if plan else None,
            month=self._usage.count_month(user_id, month) if "month" in counters else None,
            hour=self._usage.count_hour(user_id, hour_label(now)) if "hour" in counters else None,
            full=self._usage.count_full_regens(user_id, month) if "full" in counters else None,
            credits=self._usage.credits_seed(user_id) if "credits" in counters else None,
        )

    def _effective_plan(self, user_id: str, now: datetime) -> Plan | None:
        info = self._plans.load_plan(user_id)
        name = resolve_effective_plan(info.base_plan, info.boost_expires_at, now)
        return PLANS[name] if name else None

    def _counter(
        self,
        key: str,
        limit: int,
        n: int,
        expireat_s: int,
        seed: Callable[[], int],
        resets_at: datetime,
    ) -> CounterResult:
        keys = wire(CounterKeys(counter=key))
        args = CounterArgs(limit=str(limit), n=str(n), expireat_s=str(expireat_s), seed="")
        reply = self._redis.run("counter_with_limit", keys, wire(args))
        if reply[0] == "need_seed":
            args = replace(args, seed=str(seed()))
            reply = self._redis.run("counter_with_limit", keys, wire(args))
        return CounterResult(reply[0] == "ok", int(reply[1]), int(reply[2]), resets_at)

    def _acquire(self, key: str, lease_id: str, limit: int) -> SemaphoreResult:
        args = SemaphoreAcquireArgs(
            time_offset_ms=str(self.time_offset_ms),
            lease_id=lease_id,
            limit=str(limit),
            lease_ttl_ms=str(self._lease_ttl_ms),
        )
        keys = SemaphoreAcquireKeys(semaphore=key)
        reply = self._redis.run("semaphore_acquire", wire(keys), wire(args))
        if int(reply[0]) == 1:
            return SemaphoreResult(True, int(reply[1]), limit)
        return SemaphoreResult(False, int(reply[1]), limit, max(1, -(-int(reply[2]) // 1000)))


def _validate(req: AdmissionRequest) -> None:
    if req.variants < 1:
        raise ValueError("variants must be at least 1")
    if req.idem_key is not None and not req.fingerprint:
        raise ValueError("an Idempotency-Key needs the request fingerprint")
