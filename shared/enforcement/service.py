"""``Enforcer``: every limit decision of the product, each one Lua call in the common case.

The rare paths cost one extra trip: a plan missing from the cache (``need_plan``) or a
usage counter missing in Redis (``need_seed``, a new period or lost data) make the caller
load the truth from Postgres and call again with it in ARGV; the script writes it.

``time_offset_ms`` moves script time (Redis ``TIME``) forward; it is 0 in production and
lets tests expire leases, cooldowns and boosts without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from shared.clock import Clock, SystemClock
from shared.enforcement.ports import LedgerTruth, PlanSource, Truth, TruthSource, UsageSource
from shared.enforcement.scripts import (
    admission,
    cooldown,
    counter_with_limit,
    credit_set,
    finish,
    idempotency,
    refresh_lease,
    refund,
    semaphore_acquire,
    semaphore_release,
    usage,
)
from shared.enforcement.scripts.admission import Admission, AdmissionRequest, AdmissionTicket
from shared.enforcement.scripts.common import (
    AdmitConfig,
    Need,
    PlanFill,
    fence_arg,
    hour_expireat_s,
    lease_sem_keys,
    month_expireat_s,
)
from shared.enforcement.scripts.cooldown import CooldownResult
from shared.enforcement.scripts.counter_with_limit import CounterResult
from shared.enforcement.scripts.idempotency import IdempotencyState
from shared.enforcement.scripts.refresh_lease import LeaseStatus
from shared.enforcement.scripts.semaphore_acquire import SemaphoreResult
from shared.enforcement.scripts.usage import UsageSnapshot
from shared.enforcement.values import (
    ChargeRef,
    IdempotencyRef,
    LeaseRef,
    StatusNote,
    StoredResponse,
)
from shared.errors import ServiceUnavailable
from shared.plans import PLANS, Lane, Plan, PlanName, resolve_effective_plan
from shared.redis.client import RedisPort
from shared.redis.keys import Keys, hour_end, month_end

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
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._plans = plans
        # One read of the plan and the missing counts together, when the adapter can;
        # else one read per source (a first request of a period pays for each).
        self._truth: TruthSource = truth or LedgerTruth(plans, usage)
        self._lease_ttl_ms = lease_ttl_s * 1000
        self._plan_cache_ttl_s = plan_cache_ttl_s
        self._provider_caps = dict(provider_caps)
        self._idempotency_ttl_s = idempotency_ttl_s
        # The plan table of every decision (tests may lift one limit to isolate another):
        # admission reads it encoded in ARGV, the single-limit wrappers here.
        self._plans_table = dict(plans_table)
        self._plan_table = admission.plan_table(plans_table)
        # "now" of the calls that are not given one (the single-limit wrappers).
        self._clock: Clock = clock or SystemClock()
        self.time_offset_ms = 0

    # ---- admission ---------------------------------------------------------------------

    def admit(self, req: AdmissionRequest) -> Admission:
        """Decide ``req`` atomically; a refusal consumes nothing. ``ValueError`` on bad input."""
        _validate(req)
        keys = admission.admission_keys(self._keys, req)
        cfg = self._config(req.lane)

        def attempt(fill: PlanFill | None, seeds: Truth | None) -> Admission | Need:
            args = admission.admission_args(req, cfg, fill, seeds)
            return admission.parse_admission(
                self._redis.run(admission.SCRIPT.name, keys, args), req
            )

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
        keys = finish.finish_keys(self._keys, lease, charge, idem, draft_id, hour, note)
        args = finish.finish_args(lease, charge, idem, draft_id, hour, note)
        return finish.parse_finish(self._redis.run(finish.SCRIPT.name, keys, args))

    def release(self, lease: LeaseRef) -> bool:
        """Release both slots of ``lease`` and drop its record; False when already released."""
        return self.release_concurrency(lease) > 0

    def refund(self, charge: ChargeRef) -> bool:
        """Give the unit back once per generation; False when it was already refunded."""
        keys, args = refund.refund_keys(self._keys, charge), refund.refund_args(charge)
        return refund.parse_refund(self._redis.run(refund.SCRIPT.name, keys, args))

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
        keys = refresh_lease.refresh_lease_keys(self._keys, lease, token, note)
        args = refresh_lease.refresh_lease_args(
            lease,
            time_offset_ms=self.time_offset_ms,
            lease_ttl_ms=self._lease_ttl_ms,
            user_limit=PLANS[plan].concurrent_jobs,
            provider_cap=self._provider_caps[lease.lane],
            token=token,
            note=note,
        )
        return refresh_lease.parse_refresh(self._redis.run(refresh_lease.SCRIPT.name, keys, args))

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
        keys = credit_set.credit_set_keys(self._keys, user_id)
        args = credit_set.credit_set_args(credit_id, kind, expires_at, limit)
        return credit_set.parse_credit_set(self._redis.run(credit_set.SCRIPT.name, keys, args))

    def invalidate_plan(self, user_id: str) -> None:
        """Forget the cached plan (call on every subscription or boost change)."""
        self._redis.delete(self._keys.plan_effective(user_id), self._keys.boost_until(user_id))

    def usage(self, user_id: str, now: datetime) -> UsageSnapshot:
        """The caller's month, hour, full regens and concurrency (GET /v1/usage)."""
        keys = usage.usage_keys(self._keys, user_id, now)
        cfg = self._config(Lane.INTERACTIVE)

        def attempt(fill: PlanFill | None, seeds: Truth | None) -> UsageSnapshot | Need:
            args = usage.usage_args(now, cfg, fill, seeds)
            return usage.parse_usage(self._redis.run(usage.SCRIPT.name, keys, args), now)

        return self._settle(user_id, now, attempt)

    # ---- idempotency for endpoints without admission -----------------------------------

    def get_or_set_idempotency(
        self, user_id: str, scope: str, idem_key: str, fingerprint: str
    ) -> IdempotencyState:
        """Claim ``idem_key`` (new → pending), or say replay / in progress / reused."""
        keys = idempotency.idem_keys(self._keys, user_id, scope, idem_key)
        args = idempotency.idem_begin_args(fingerprint, self._idempotency_ttl_s)
        reply = self._redis.run(idempotency.BEGIN.name, keys, args)
        return idempotency.parse_idempotency(reply)

    def peek_idempotency(
        self, user_id: str, scope: str, idem_key: str, fingerprint: str
    ) -> IdempotencyState:
        """What ``idem_key`` would answer now (replay / in progress / reused), or ``NEW``
        when it has no record; claims nothing (admission does, atomically)."""
        keys = idempotency.idem_keys(self._keys, user_id, scope, idem_key)
        args = idempotency.idem_peek_args(fingerprint)
        return idempotency.parse_idempotency(self._redis.run(idempotency.PEEK.name, keys, args))

    def complete_idempotent(
        self, user_id: str, scope: str, idem_key: str, fingerprint: str, response: StoredResponse
    ) -> bool:
        """Store the first response for replay; False if the key belongs to another body or
        its pending record is gone (the account was deleted meanwhile, or Redis lost it)."""
        keys = idempotency.idem_keys(self._keys, user_id, scope, idem_key)
        args = idempotency.idem_complete_args(fingerprint, response, self._idempotency_ttl_s)
        return idempotency.parse_flag(self._redis.run(idempotency.COMPLETE.name, keys, args))

    def drop_idempotent(self, user_id: str, scope: str, idem_key: str, fingerprint: str) -> bool:
        """Forget a pending key (the request failed with a 5xx); a done one stays."""
        keys = idempotency.idem_keys(self._keys, user_id, scope, idem_key)
        args = idempotency.idem_drop_args(fingerprint)
        return idempotency.parse_flag(self._redis.run(idempotency.DROP.name, keys, args))

    # ---- the seed's single-limit wrappers --------------------------------------------------
    # Each runs one single-limit script (its module in ``scripts/``) with the limit of the
    # user's effective plan in this enforcer's plan table; the script applies the same
    # ``lua/lib`` rule admission does, a missing counter is seeded as admission's are
    # (``_settle``), and ``now`` defaults to the injected clock. Production uses ``admit``.

    def enforce_monthly_pool(
        self, user_id: str, n: int = 1, *, now: datetime | None = None
    ) -> CounterResult:
        """Charge ``n`` monthly units if the effective plan's pool allows."""
        now = self._now(now)
        plan = self._effective_plan(user_id, now)
        return self._counter(user_id, now, "month", plan.generations_per_month if plan else 0, n)

    def enforce_hourly_burst(
        self, user_id: str, n: int = 1, *, now: datetime | None = None
    ) -> CounterResult:
        """Charge ``n`` hourly units if the effective plan's burst allows."""
        now = self._now(now)
        plan = self._effective_plan(user_id, now)
        return self._counter(user_id, now, "hour", plan.generations_per_hour if plan else 0, n)

    def full_regen_cap(self, user_id: str, *, now: datetime | None = None) -> CounterResult:
        """Charge one full regeneration if the plan allows one (UNLIMITED: always)."""
        now = self._now(now)
        plan = self._effective_plan(user_id, now)
        limit = plan.full_regens_per_month if plan and plan.full_regen_allowed else 0
        return self._counter(user_id, now, "full", limit, 1)

    def acquire_user_concurrency(
        self, user_id: str, lease_id: str, *, now: datetime | None = None
    ) -> SemaphoreResult:
        """Take one of the user's concurrent-job slots for ``lease_id``."""
        plan = self._effective_plan(user_id, self._now(now))
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
        keys = semaphore_release.semaphore_release_keys(
            self._keys.lease(lease.lease_id), lease_sem_keys(self._keys, lease)
        )
        args = semaphore_release.semaphore_release_args(lease.lease_id, fence_arg(lease))
        reply = self._redis.run(semaphore_release.SCRIPT.name, keys, args)
        return semaphore_release.parse_semaphore_release(reply)

    def check_and_set_regen_cooldown(
        self, user_id: str, draft_id: str, *, now: datetime | None = None
    ) -> CooldownResult:
        """Start the draft's regeneration cooldown unless one is running."""
        plan = self._effective_plan(user_id, self._now(now))
        cooldown_ms = plan.regen_cooldown_s * 1000 if plan else 0
        keys = cooldown.cooldown_keys(self._keys.regen_cooldown(user_id, draft_id))
        args = cooldown.cooldown_args(self.time_offset_ms, cooldown_ms)
        return cooldown.parse_cooldown(self._redis.run(cooldown.SCRIPT.name, keys, args))

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
        attempt: Callable[[PlanFill | None, Truth | None], _T | Need],
    ) -> _T:
        fill: PlanFill | None = None
        seeds: Truth | None = None
        for _ in range(_MAX_TRIPS):
            outcome = attempt(fill, seeds)
            if not isinstance(outcome, Need):
                return outcome
            # The counts are the seeds of this call's retry (each named as need_seed names it).
            seeds = self._truth.load_truth(
                user_id, now, plan=outcome.plan and fill is None, counters=outcome.counters
            )
            if seeds.plan is not None:
                fill = PlanFill.of(seeds.plan)
        raise ServiceUnavailable("Usage counters could not be settled; retry shortly.")

    def _now(self, now: datetime | None) -> datetime:
        return self._clock.now() if now is None else now

    def _effective_plan(self, user_id: str, now: datetime) -> Plan | None:
        info = self._plans.load_plan(user_id)
        name = resolve_effective_plan(info.base_plan, info.boost_expires_at, now)
        return self._plans_table[name] if name else None

    def _counter(
        self, user_id: str, now: datetime, counter: str, limit: int, n: int
    ) -> CounterResult:
        """Charge ``counter`` ('month', 'hour' or 'full') of the period of ``now``."""
        month, hour, full = self._keys.month_counters(user_id, now)
        key, expireat_s, resets_at = {
            "month": (month, month_expireat_s(now), month_end(now)),
            "hour": (hour, hour_expireat_s(now), hour_end(now)),
            "full": (full, month_expireat_s(now), month_end(now)),
        }[counter]
        keys = counter_with_limit.counter_keys(key)

        def attempt(_fill: PlanFill | None, seeds: Truth | None) -> CounterResult | Need:
            seed: int | None = getattr(seeds, counter) if seeds else None
            args = counter_with_limit.counter_args(limit, n, expireat_s, seed)
            reply = self._redis.run(counter_with_limit.SCRIPT.name, keys, args)
            return counter_with_limit.parse_counter(reply, counter, resets_at)

        return self._settle(user_id, now, attempt)

    def _acquire(self, key: str, lease_id: str, limit: int) -> SemaphoreResult:
        keys = semaphore_acquire.semaphore_acquire_keys(key)
        args = semaphore_acquire.semaphore_acquire_args(
            lease_id, limit, time_offset_ms=self.time_offset_ms, lease_ttl_ms=self._lease_ttl_ms
        )
        reply = self._redis.run(semaphore_acquire.SCRIPT.name, keys, args)
        return semaphore_acquire.parse_semaphore_acquire(reply, limit)


def _validate(req: AdmissionRequest) -> None:
    if req.variants < 1:
        raise ValueError("variants must be at least 1")
    if req.idem_key is not None and not req.fingerprint:
        raise ValueError("an Idempotency-Key needs the request fingerprint")
