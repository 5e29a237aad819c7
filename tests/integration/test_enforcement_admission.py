"""Admission, leases, refunds, idempotency and usage on real Redis, through both clients."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
import redis

from shared.enforcement import (
    AdmissionRequest,
    AdmissionTicket,
    ChargeRef,
    Enforcer,
    LeaseRef,
    Scope,
    StatusNote,
    StoredResponse,
    enforce_or_throw,
)
from shared.enforcement.ports import PlanInfo
from shared.enforcement.scripts.admission import (
    Admission,
    AdmissionArgs,
    AdmissionKind,
    plan_table,
)
from shared.enforcement.scripts.idempotency import IdempotencyKind
from shared.errors import LimitExceeded, ServiceUnavailable
from shared.plans import LOW_CREDIT_MARK, PLANS, Lane, PlanName
from shared.queue.signing import RedisTokenLedger, TokenUse
from shared.redis import Keys, RedisPort, month_label
from shared.redis.keys import hour_end, month_end
from tests.support.clock import FixedClock
from tests.support.enforcement_sources import FakePlans, FakeUsage
from tests.support.script_calls import record_script_calls

PROVIDER, MODEL = "minimax", "MiniMax-M2.5"


@dataclass
class World:
    enforcer: Enforcer
    port: RedisPort
    keys: Keys
    plans: FakePlans
    usage: FakeUsage
    now: datetime
    provider: str

    def user(self, plan: PlanName | None = PlanName.BASIC, boost: datetime | None = None) -> str:
        user_id = f"u{uuid.uuid4().hex[:10]}"
        self.plans.plans[user_id] = PlanInfo(plan, boost)
        return user_id

    def request(self, user_id: str, scope: Scope = Scope.CREATE, **kw: object) -> AdmissionRequest:
        fields: dict[str, object] = {
            "user_id": user_id,
            "scope": scope,
            "lease_id": uuid.uuid4().hex,
            "now": self.now,
            "provider": self.provider,
            "model": MODEL,
            "lane": Lane.INTERACTIVE,
        }
        fields.update(kw)
        return AdmissionRequest(**fields)  # type: ignore[arg-type]

    def admit(self, user_id: str, scope: Scope = Scope.CREATE, **kw: object) -> Admission:
        return self.enforcer.admit(self.request(user_id, scope, **kw))

    def ticket(self, user_id: str, scope: Scope = Scope.CREATE, **kw: object) -> AdmissionTicket:
        admission = self.admit(user_id, scope, **kw)
        assert admission.kind is AdmissionKind.ADMITTED, admission
        assert admission.ticket is not None
        return admission.ticket


def make_world(port: RedisPort, run_prefix: str, *, provider_cap: int = 50) -> World:
    keys = Keys(f"{run_prefix}:{uuid.uuid4().hex[:6]}")
    plans, usage = FakePlans(), FakeUsage()
    now = datetime.now(UTC)
    enforcer = Enforcer(
        port,
        keys,
        plans,
        usage,
        lease_ttl_s=60,
        plan_cache_ttl_s=600,
        provider_caps={Lane.INTERACTIVE: provider_cap, Lane.BATCH: 1},
        clock=FixedClock(now),  # the single-limit wrappers' "now" when none is passed
    )
    return World(enforcer, port, keys, plans, usage, now, f"{PROVIDER}{uuid.uuid4().hex[:4]}")


@pytest.fixture
def world(port: RedisPort, run_prefix: str) -> World:
    return make_world(port, run_prefix)


def refusal_code(admission: Admission) -> str:
    assert admission.kind is AdmissionKind.REFUSED, admission
    assert admission.refusal is not None
    return admission.refusal.code


# ---- admission ---------------------------------------------------------------------------


def test_admit_costs_one_trip_when_cached_and_two_when_the_plan_is_missing(world: World) -> None:
    world.ticket(world.user(PlanName.PRO))  # the server has the script cached from now on
    user = world.user(PlanName.PRO)
    before = world.port.round_trips
    first = world.ticket(user)
    assert world.port.round_trips - before == 2  # need_plan (+ seeds) then the decision
    assert first.plan is PlanName.PRO
    assert (first.monthly.used, first.monthly.limit) == (1, 900)
    before = world.port.round_trips
    world.ticket(user)
    assert world.port.round_trips - before == 1
    assert world.plans.loads == 2  # one per user, none for the cached call


def test_missing_counters_are_seeded_from_the_ledger(world: World) -> None:
    user = world.user(PlanName.BASIC)
    world.usage.month[(user, month_label(world.now))] = 59
    ticket = world.ticket(user)
    assert ticket.monthly.used == 60
    world.enforcer.release(ticket.lease)
    refused = world.admit(user)
    assert refusal_code(refused) == "MONTHLY_QUOTA_EXCEEDED"
    with pytest.raises(LimitExceeded) as info:
        enforce_or_throw(refused)
    assert info.value.details["limit"] == 60
    assert info.value.details["used"] == 60
    assert info.value.details["resets_at"].endswith("Z")
    assert info.value.retry_after is not None
    assert info.value.retry_after >= 1


def test_hourly_refusal_does_not_touch_the_monthly_pool(world: World) -> None:
    user = world.user(PlanName.BASIC)
    hour = world.now.strftime("%Y%m%d%H")
    world.usage.hour[(user, hour)] = 10
    assert refusal_code(world.admit(user)) == "HOURLY_LIMIT_EXCEEDED"
    snapshot = world.enforcer.usage(user, world.now)
    assert snapshot.generations.used == 0
    assert snapshot.hourly.used == 10
    assert snapshot.concurrency.used == 0


def test_provider_busy_does_not_take_the_user_slot(port: RedisPort, run_prefix: str) -> None:
    world = make_world(port, run_prefix, provider_cap=1)
    holder, other = world.user(PlanName.PRO), world.user(PlanName.BASIC)
    world.ticket(holder)
    refused = world.admit(other)
    assert refusal_code(refused) == "PROVIDER_BUSY"
    with pytest.raises(ServiceUnavailable) as info:
        enforce_or_throw(refused)
    assert info.value.code == "PROVIDER_BUSY"
    assert info.value.retry_after
    usage = world.enforcer.usage(other, world.now)
    assert (usage.concurrency.used, usage.generations.used, usage.hourly.used) == (0, 0, 0)


def test_concurrency_limit_then_release_frees_the_slot(world: World) -> None:
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    assert refusal_code(world.admit(user)) == "CONCURRENCY_LIMIT"
    assert world.enforcer.release(ticket.lease) is True
    assert world.enforcer.release(ticket.lease) is False
    world.ticket(user)


def test_plan_checks(world: World) -> None:
    nobody = world.user(None)
    assert refusal_code(world.admit(nobody)) == "SUBSCRIPTION_REQUIRED"
    basic = world.user(PlanName.BASIC)
    assert refusal_code(world.admit(basic, variants=2)) == "PLAN_FEATURE_UNAVAILABLE"
    full = world.admit(basic, Scope.REGEN_FULL, draft_id="d1")
    assert refusal_code(full) == "PLAN_FEATURE_UNAVAILABLE"


def test_full_regen_cap_and_cooldown(world: World) -> None:
    user = world.user(PlanName.STANDARD)
    world.usage.full[(user, month_label(world.now))] = 29
    ticket = world.ticket(user, Scope.REGEN_FULL, draft_id="d1", variants=3)
    world.enforcer.release(ticket.lease)
    assert refusal_code(world.admit(user, Scope.REGEN_FULL, draft_id="d2")) == (
        "FULL_REGEN_CAP_EXCEEDED"
    )
    cooled = world.admit(user, Scope.REGEN_TARGETED, draft_id="d1")
    assert refusal_code(cooled) == "COOLDOWN_ACTIVE"
    assert cooled.refusal is not None
    assert 1 <= (cooled.refusal.retry_after_s or 0) <= 10
    world.enforcer.time_offset_ms = 10_500
    world.ticket(user, Scope.REGEN_TARGETED, draft_id="d1")


def test_pro_boost_applies_and_drops_back(world: World) -> None:
    boost_until = datetime.now(UTC) + timedelta(seconds=30)
    user = world.user(PlanName.BASIC, boost=boost_until)
    ticket = world.ticket(user, variants=5)
    assert ticket.plan is PlanName.PRO
    world.enforcer.release(ticket.lease)
    world.enforcer.time_offset_ms = 31_000
    assert refusal_code(world.admit(user, variants=5)) == "PLAN_FEATURE_UNAVAILABLE"
    assert world.ticket(user).plan is PlanName.BASIC
    world.enforcer.invalidate_plan(user)
    world.plans.plans[user] = PlanInfo(PlanName.STANDARD)
    usage = world.enforcer.usage(user, world.now)
    assert usage.plan is PlanName.STANDARD
    assert usage.effective_plan is PlanName.STANDARD


def test_leases_expire(world: World) -> None:
    user = world.user(PlanName.BASIC)  # one concurrent job
    world.ticket(user)
    world.enforcer.time_offset_ms = 59_000  # the 60 s lease is still held: refused
    assert refusal_code(world.admit(user)) == "CONCURRENCY_LIMIT"
    assert world.enforcer.usage(user, world.now).concurrency.used == 1
    world.enforcer.time_offset_ms = 61_000  # expired: the slot is free without a release
    assert world.enforcer.usage(user, world.now).concurrency.used == 0
    world.ticket(user)


def test_refund_once_and_finish(world: World) -> None:
    user = world.user(PlanName.STANDARD)
    ticket = world.ticket(user, Scope.REGEN_FULL, draft_id="d")
    assert world.enforcer.finish(ticket.lease, ticket.charge) is True
    assert world.enforcer.refund(ticket.charge) is False
    assert world.enforcer.finish(ticket.lease, ticket.charge) is False
    usage = world.enforcer.usage(user, world.now)
    assert (usage.generations.used, usage.hourly.used, usage.full_regens.used) == (0, 1, 0)
    assert usage.concurrency.used == 0
    second = world.enforcer.refund(
        ChargeRef("never-charged", user, month_label(world.now), Scope.CREATE)
    )
    assert second is True  # the counter is at 0: nothing goes below zero
    assert world.enforcer.usage(user, world.now).generations.used == 0


def test_abort_refunds_releases_and_unpins_the_key(world: World) -> None:
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user, idem_key="k", fingerprint="f1")
    assert world.admit(user, idem_key="k", fingerprint="f1").kind is AdmissionKind.IN_PROGRESS
    assert world.enforcer.abort(ticket) is True
    usage = world.enforcer.usage(user, world.now)
    assert (usage.generations.used, usage.concurrency.used) == (0, 0)
    assert usage.hourly.used == 0  # no generation ran: the hourly unit comes back too
    assert world.enforcer.abort(ticket) is False  # idempotent: nothing is given back twice
    assert world.enforcer.usage(user, world.now).hourly.used == 0
    assert world.admit(user, idem_key="k", fingerprint="f1").kind is AdmissionKind.ADMITTED


def test_idempotent_replay_and_reuse(world: World) -> None:
    user = world.user(PlanName.PRO)
    ticket = world.ticket(user, idem_key="key-1", fingerprint="body-a")
    assert ticket.idempotency is not None
    response = StoredResponse(202, '{"id": "é"}', {"Location": "/v1/generations/x"})
    idem = ticket.idempotency
    assert world.enforcer.complete_idempotent(
        user, idem.scope, idem.key, idem.fingerprint, response
    )
    replay = world.admit(user, idem_key="key-1", fingerprint="body-a")
    assert replay.kind is AdmissionKind.REPLAY
    assert replay.replay == response
    assert enforce_or_throw(replay) == response
    reused = world.admit(user, idem_key="key-1", fingerprint="body-b")
    assert reused.kind is AdmissionKind.KEY_REUSED
    assert world.enforcer.usage(user, world.now).generations.used == 1


def test_idempotency_for_endpoints_without_admission(world: World) -> None:
    enforcer, user = world.enforcer, world.user()
    assert enforcer.get_or_set_idempotency(user, "assets", "k", "a").kind is IdempotencyKind.NEW
    assert enforcer.get_or_set_idempotency(user, "assets", "k", "a").kind is (
        IdempotencyKind.IN_PROGRESS
    )
    assert (
        enforcer.get_or_set_idempotency(user, "assets", "k", "b").kind is IdempotencyKind.KEY_REUSED
    )
    assert enforcer.drop_idempotent(user, "assets", "k", "a") is True
    assert enforcer.get_or_set_idempotency(user, "assets", "k", "a").kind is IdempotencyKind.NEW
    response = StoredResponse(201, "{}", {})
    assert enforcer.complete_idempotent(user, "assets", "k", "b", response) is False
    assert enforcer.complete_idempotent(user, "assets", "k", "a", response) is True
    assert enforcer.drop_idempotent(user, "assets", "k", "a") is False
    state = enforcer.get_or_set_idempotency(user, "assets", "k", "a")
    assert state.kind is IdempotencyKind.REPLAY
    assert state.replay == response


def test_refresh_lease(port: RedisPort, run_prefix: str) -> None:
    world = make_world(port, run_prefix, provider_cap=1)
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    status = world.enforcer.refresh_lease(ticket.lease, PlanName.BASIC)
    assert status.state == "held"
    assert status.ok
    world.enforcer.time_offset_ms = 61_000
    assert world.enforcer.refresh_lease(ticket.lease, PlanName.BASIC).state == "reacquired"
    world.enforcer.time_offset_ms = 200_000
    other = world.ticket(world.user(PlanName.PRO))  # takes the only provider slot
    busy = world.enforcer.refresh_lease(ticket.lease, PlanName.BASIC)
    assert busy.state == "busy"
    assert busy.code == "PROVIDER_BUSY"
    assert not busy.ok
    world.enforcer.release(other.lease)
    second = world.ticket(user)  # the expired lease does not count against its user
    busy = world.enforcer.refresh_lease(ticket.lease, PlanName.BASIC)
    assert busy.code in ("CONCURRENCY_LIMIT", "PROVIDER_BUSY")
    assert world.enforcer.usage(user, world.now).concurrency.used == 1
    world.enforcer.release(second.lease)


def test_a_newer_claim_fences_the_lease(world: World) -> None:
    """A delivery taken over (claim 1, then claim 2) can neither refresh, release nor
    refund the lease; the live claim still can (DESIGN §5 fencing)."""
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    old, live = replace(ticket.lease, attempt=1), replace(ticket.lease, attempt=2)
    enforcer = world.enforcer
    assert enforcer.refresh_lease(old, PlanName.BASIC).state == "held"
    assert enforcer.refresh_lease(live, PlanName.BASIC).state == "held"

    assert enforcer.refresh_lease(old, PlanName.BASIC).superseded
    assert enforcer.release(old) is False
    assert enforcer.finish(old, ticket.charge) is False
    usage = enforcer.usage(user, world.now)
    assert (usage.generations.used, usage.concurrency.used) == (1, 1)

    assert enforcer.finish(live, ticket.charge) is True
    usage = enforcer.usage(user, world.now)
    assert (usage.generations.used, usage.concurrency.used) == (0, 0)


def _token(world: World) -> TokenUse:
    return TokenUse(f"jwt_{uuid.uuid4().hex}", 300, RedisTokenLedger(world.port, world.keys))


def _concurrency(world: World, user: str) -> int:
    return world.enforcer.usage(user, world.now).concurrency.used


def test_refresh_records_the_delivery_token_once(world: World) -> None:
    """The worker's first script call is also the signature's replay check: the jti is
    remembered in the key ``SET NX`` uses, and a token seen before refreshes nothing."""
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    enforcer, token = world.enforcer, _token(world)
    lease = replace(ticket.lease, attempt=1)

    assert enforcer.refresh_lease(lease, PlanName.BASIC, token=token).state == "held"
    assert token.ledger.first_use(token.token_id, 300) is False  # the same key as SET NX
    assert world.port.get(world.keys.qstash_token(token.token_id)) == "1"

    # Past the lease's end: the replay neither re-takes the slots nor moves the fence.
    enforcer.time_offset_ms = 61_000
    replayed = enforcer.refresh_lease(replace(lease, attempt=2), PlanName.BASIC, token=token)
    assert replayed.replayed
    assert not replayed.ok
    assert _concurrency(world, user) == 0
    assert enforcer.refresh_lease(lease, PlanName.BASIC, token=_token(world)).state == "reacquired"
    assert _concurrency(world, user) == 1
    enforcer.release(lease)


def test_a_refused_refresh_still_uses_up_its_token(world: World) -> None:
    """busy or superseded: the token is spent all the same (as when it was checked before
    the script), so presenting it again is a replay, not a second chance."""
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    enforcer = world.enforcer
    assert enforcer.refresh_lease(replace(ticket.lease, attempt=2), PlanName.BASIC).ok
    token = _token(world)
    old = replace(ticket.lease, attempt=1)

    assert enforcer.refresh_lease(old, PlanName.BASIC, token=token).superseded
    assert enforcer.refresh_lease(old, PlanName.BASIC, token=token).replayed
    enforcer.release(replace(ticket.lease, attempt=2))


def test_duplicate_admission_of_one_lease_charges_once(world: World) -> None:
    user = world.user(PlanName.PRO)
    request = world.request(user)
    first, again = world.enforcer.admit(request), world.enforcer.admit(request)
    assert first.kind is again.kind is AdmissionKind.ADMITTED
    assert world.enforcer.usage(user, world.now).generations.used == 1


def test_invalid_requests(world: World) -> None:
    user = world.user()
    with pytest.raises(ValueError, match=r"^variants must be at least 1$"):
        world.admit(user, variants=0)
    with pytest.raises(ValueError, match=r"^an Idempotency-Key needs the request fingerprint$"):
        world.admit(user, idem_key="k")
    assert world.admit(user, variants=1).kind is AdmissionKind.ADMITTED  # the edge is allowed


# ---- thin wrappers -----------------------------------------------------------------------


def test_thin_counters(world: World) -> None:
    enforcer, user = world.enforcer, world.user(PlanName.BASIC)
    now = world.now
    world.usage.month[(user, month_label(now))] = 58
    first = enforcer.enforce_monthly_pool(user, now=now)
    assert (first.allowed, first.used, first.limit) == (True, 59, 60)
    assert enforcer.enforce_monthly_pool(user, 2, now=now).allowed is False
    assert enforcer.enforce_monthly_pool(user, now=now).used == 60
    ttl = world.port.run(
        "counter_with_limit", [world.keys.gen_used(user, now.strftime("%Y%m"))], [60, 0, 1, ""]
    )
    assert ttl[0] == "ok"
    hourly = [enforcer.enforce_hourly_burst(user, now=now).allowed for _ in range(11)]
    assert hourly == [True] * 10 + [False]
    assert enforcer.full_regen_cap(user, now=now).allowed is False  # basic: no full regen
    pro = world.user(PlanName.PRO)
    assert all(enforcer.full_regen_cap(pro, now=now).allowed for _ in range(3))
    assert enforcer.enforce_monthly_pool(world.user(None), now=now).allowed is False


def test_thin_semaphores_and_cooldown(world: World) -> None:
    enforcer, user = world.enforcer, world.user(PlanName.BASIC)
    assert enforcer.acquire_user_concurrency(user, "l1").acquired
    assert enforcer.acquire_user_concurrency(user, "l1").acquired  # re-entrant for its holder
    blocked = enforcer.acquire_user_concurrency(user, "l2")
    assert not blocked.acquired
    assert blocked.retry_after_s
    assert blocked.retry_after_s <= 60
    lane = Lane.BATCH  # cap 1 in this world
    assert enforcer.acquire_provider_concurrency(world.provider, MODEL, lane, "l1").acquired
    assert not enforcer.acquire_provider_concurrency(world.provider, MODEL, lane, "l2").acquired
    lease = LeaseRef("l1", user, world.provider, MODEL, Lane.BATCH)
    assert enforcer.release_concurrency(lease) == 2
    assert enforcer.release_concurrency(lease) == 0
    assert enforcer.acquire_user_concurrency(user, "l2").acquired
    assert enforcer.check_and_set_regen_cooldown(user, "d").allowed
    again = enforcer.check_and_set_regen_cooldown(user, "d")
    assert not again.allowed
    assert again.retry_after_s == PLANS[PlanName.BASIC].regen_cooldown_s
    enforcer.time_offset_ms = 20_001
    assert enforcer.check_and_set_regen_cooldown(user, "d").allowed


def _status(world: World, lease: LeaseRef) -> str | None:
    return world.port.get(world.keys.generation_status(lease.lease_id))


def _note(lease: LeaseRef, status: str) -> StatusNote:
    return StatusNote(lease.lease_id, status, ttl_ms=60_000)


def _status_ttl_ms(world: World, lease: LeaseRef, redis_url: str) -> int:
    raw = redis.Redis.from_url(redis_url)
    try:
        return int(raw.pttl(world.keys.generation_status(lease.lease_id)))
    finally:
        raw.close()


def test_the_refresh_publishes_running_only_first_and_only_when_it_holds_the_slots(
    world: World, redis_url: str
) -> None:
    """The worker's lease refresh carries the ``running`` status for the event streams:
    written only when the slots are held, and never over a status published before it
    (a terminal one; queued is never published), so a stream's hint never goes back."""
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    enforcer, lease = world.enforcer, replace(ticket.lease, attempt=2)
    old = replace(ticket.lease, attempt=1)
    assert enforcer.refresh_lease(lease, PlanName.BASIC).ok  # no note: nothing published
    assert _status(world, lease) is None
    assert enforcer.refresh_lease(old, PlanName.BASIC, note=_note(old, "running")).superseded
    assert _status(world, lease) is None
    assert enforcer.refresh_lease(lease, PlanName.BASIC, note=_note(lease, "running")).ok
    assert _status(world, lease) == "running"
    assert 59_000 < _status_ttl_ms(world, lease, redis_url) <= 60_000

    world.port.set(world.keys.generation_status(lease.lease_id), "cancelled", px_ms=60_000)
    assert enforcer.refresh_lease(lease, PlanName.BASIC, note=_note(lease, "running")).ok
    assert _status(world, lease) == "cancelled"
    enforcer.release(lease)


def test_a_busy_refresh_publishes_nothing(world: World) -> None:
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    enforcer = world.enforcer
    enforcer.release(ticket.lease)
    limit = PLANS[PlanName.BASIC].concurrent_jobs
    others = [world.ticket(user) for _ in range(limit)]
    busy = enforcer.refresh_lease(ticket.lease, PlanName.BASIC, note=_note(ticket.lease, "running"))
    assert busy.state == "busy"
    assert _status(world, ticket.lease) is None
    for other in others:
        enforcer.release(other.lease)


def test_finish_publishes_the_terminal_status_unless_a_newer_claim_holds_the_lease(
    world: World, redis_url: str
) -> None:
    """The release/refund that ends a job carries its terminal status (over ``running``);
    a delivery taken over frees nothing and publishes nothing."""
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    enforcer = world.enforcer
    old, live = replace(ticket.lease, attempt=1), replace(ticket.lease, attempt=2)
    assert enforcer.refresh_lease(live, PlanName.BASIC, note=_note(live, "running")).ok

    assert enforcer.finish(old, ticket.charge, note=_note(old, "failed")) is False
    assert _status(world, live) == "running"
    assert enforcer.finish(live, note=_note(live, "succeeded")) is False  # release only
    assert _status(world, live) == "succeeded"
    assert _concurrency(world, user) == 0
    assert 59_000 < _status_ttl_ms(world, live, redis_url) <= 60_000


# ---- the wrappers' plan, period and clock, to the value (make mutate) -------------------


def _boosted_until_tomorrow(world: World) -> tuple[str, datetime]:
    """A Basic user boosted to Pro until a day after the enforcer's clock, and a ``now``
    40 days on (another month and hour, the boost over)."""
    user = world.user(PlanName.BASIC, boost=world.now + timedelta(days=1))
    return user, world.now + timedelta(days=40)


def test_the_counters_use_the_plan_and_period_of_the_given_now(world: World) -> None:
    enforcer = world.enforcer
    user, later = _boosted_until_tomorrow(world)
    basic, pro = PLANS[PlanName.BASIC], PLANS[PlanName.PRO]
    month = enforcer.enforce_monthly_pool(user, now=later)
    assert (month.allowed, month.used, month.limit) == (True, 1, basic.generations_per_month)
    assert month.resets_at == month_end(later)
    hour = enforcer.enforce_hourly_burst(user, now=later)
    assert (hour.used, hour.limit, hour.resets_at) == (1, basic.generations_per_hour,
                                                        hour_end(later))  # fmt: skip
    assert enforcer.full_regen_cap(user, now=later).allowed is False  # Basic again
    # No ``now``: the enforcer's clock, where the boost still runs.
    boosted = enforcer.enforce_monthly_pool(user)
    assert (boosted.limit, boosted.resets_at) == (pro.generations_per_month,
                                                  month_end(world.now))  # fmt: skip
    assert enforcer.enforce_hourly_burst(user).limit == pro.generations_per_hour
    full = enforcer.full_regen_cap(user)
    assert (full.allowed, full.used) == (True, 1)


def test_the_semaphore_and_cooldown_use_the_plan_of_the_given_now(world: World) -> None:
    enforcer = world.enforcer
    user, later = _boosted_until_tomorrow(world)
    basic, pro = PLANS[PlanName.BASIC], PLANS[PlanName.PRO]
    assert basic.concurrent_jobs == 1 < pro.concurrent_jobs
    first = enforcer.acquire_user_concurrency(user, "l1", now=later)
    assert (first.acquired, first.in_use, first.limit) == (True, 1, 1)
    blocked = enforcer.acquire_user_concurrency(user, "l2", now=later)
    assert (blocked.acquired, blocked.in_use, blocked.limit) == (False, 1, 1)
    now_boosted = enforcer.acquire_user_concurrency(user, "l2")  # the clock: Pro
    assert (now_boosted.acquired, now_boosted.limit) == (True, pro.concurrent_jobs)
    assert enforcer.check_and_set_regen_cooldown(user, "d", now=later).allowed
    again = enforcer.check_and_set_regen_cooldown(user, "d", now=later)
    assert again.retry_after_s == basic.regen_cooldown_s
    assert enforcer.check_and_set_regen_cooldown(user, "e").allowed
    assert enforcer.check_and_set_regen_cooldown(user, "e").retry_after_s == pro.regen_cooldown_s


def test_a_user_without_a_plan_gets_nothing_from_the_wrappers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    enforcer, nobody = world.enforcer, world.user(None)
    hour = enforcer.enforce_hourly_burst(nobody)
    assert (hour.allowed, hour.limit) == (False, 0)
    full = enforcer.full_regen_cap(nobody)
    assert (full.allowed, full.limit) == (False, 0)
    slot = enforcer.acquire_user_concurrency(nobody, "l1")
    assert (slot.acquired, slot.limit) == (False, 0)
    calls = record_script_calls(monkeypatch, world.port)
    assert enforcer.check_and_set_regen_cooldown(nobody, "d").allowed
    sent = [(call.name, call.args) for call in calls]
    assert sent == [("cooldown", ["0", "0"])]  # no plan: no cooldown is started


def test_a_stale_slot_is_taken_back_once_script_time_passes_its_expiry(
    world: World, redis_url: str
) -> None:
    enforcer, user = world.enforcer, world.user(PlanName.BASIC)
    assert enforcer.acquire_user_concurrency(user, "crashed").acquired
    assert not enforcer.acquire_user_concurrency(user, "next").acquired
    enforcer.time_offset_ms = 60_001  # the lease TTL of this world is 60 s
    taken = enforcer.acquire_user_concurrency(user, "next")
    assert (taken.acquired, taken.in_use) == (True, 1)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:  # the expired member is dropped, not just outnumbered
        assert raw.zrange(world.keys.user_leases(user), 0, -1) == ["next"]
        # and the set itself goes a second after its last member's lease would
        assert 60_000 < raw.pttl(world.keys.user_leases(user)) <= 61_000
    finally:
        raw.close()


def test_a_refund_never_takes_a_credits_use_below_zero(world: World, redis_url: str) -> None:
    """A credits hash re-seeded from Postgres after the failure no longer counts the
    failed generation: its refund must not count one unit back twice."""
    user = world.user(PlanName.BASIC)
    expires_ms = int((world.now + timedelta(days=30)).timestamp() * 1000)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        raw.hset(world.keys.credits(user), mapping={
            "_": "1", "c:c1": f"{expires_ms}:5:grant", "u:c1": "0",
        })  # fmt: skip
        charge = ChargeRef(uuid.uuid4().hex, user, month_label(world.now), Scope.CREATE, "c1")
        assert world.enforcer.refund(charge) is True
        assert raw.hget(world.keys.credits(user), "u:c1") == "0"
    finally:
        raw.close()


def test_forget_user_deletes_in_chunks_and_counts_what_existed(
    world: World, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"{world.keys.prefix}:forget:{i}" for i in range(1001)]
    raw = redis.Redis.from_url(redis_url)
    try:
        raw.mset(dict.fromkeys(names[::3], "1"))  # 334 of them exist
    finally:
        raw.close()
    calls: list[int] = []
    delete = world.port.delete

    def counting(*keys: str) -> int:
        calls.append(len(keys))
        return delete(*keys)

    monkeypatch.setattr(world.port, "delete", counting)
    assert world.enforcer.forget_user(names, []) == 334
    assert calls == [500, 500, 1]
    assert world.enforcer.forget_user(names, []) == 0


def test_finishing_a_job_that_never_ran_gives_its_hour_back(world: World) -> None:
    """A cancel while queued names the hour the admission charged: that unit comes back
    with the month's; a finish without it (the job ran) keeps the hour spent."""
    user = world.user(PlanName.BASIC)
    queued = world.ticket(user)
    assert world.enforcer.finish(queued.lease, queued.charge, hour=queued.hour) is True
    usage = world.enforcer.usage(user, world.now)
    assert (usage.generations.used, usage.hourly.used) == (0, 0)
    ran = world.ticket(user)
    assert world.enforcer.finish(ran.lease, ran.charge) is True
    usage = world.enforcer.usage(user, world.now)
    assert (usage.generations.used, usage.hourly.used) == (0, 1)


def test_a_status_note_is_published_under_its_own_generation(world: World) -> None:
    user = world.user(PlanName.BASIC)
    ticket = world.ticket(user)
    lease, other = ticket.lease, f"gen-{uuid.uuid4().hex[:8]}"
    note = StatusNote(other, "running", ttl_ms=60_000)
    assert world.enforcer.refresh_lease(lease, PlanName.BASIC, note=note).ok
    assert world.port.get(world.keys.generation_status(other)) == "running"
    world.enforcer.finish(lease, note=StatusNote(other, "succeeded", ttl_ms=60_000))
    assert world.port.get(world.keys.generation_status(other)) == "succeeded"
    assert world.port.get(world.keys.generation_status(lease.lease_id)) is None


def test_user_state_keys_include_the_named_drafts_and_periods(world: World) -> None:
    user = world.user(PlanName.BASIC)
    found = world.enforcer.user_state_keys(user, world.now, draft_ids=["d1"], months=["2020-01"])
    assert world.keys.regen_cooldown(user, "d1") in found
    assert world.keys.gen_used(user, "202001") in found


def test_release_says_true_when_only_one_of_the_two_slots_was_left(
    world: World, redis_url: str
) -> None:
    user = world.user(PlanName.BASIC)
    lease = world.ticket(user).lease
    raw = redis.Redis.from_url(redis_url)
    try:  # the provider slot went already (say, a sweep), the user's is still held
        raw.zrem(world.keys.provider(lease.provider, lease.model, lease.lane.value), lease.lease_id)
    finally:
        raw.close()
    assert world.enforcer.release(lease) is True
    assert world.enforcer.release(lease) is False


def test_invalidate_plan_forgets_the_cached_plan_and_boost(world: World) -> None:
    user = world.user(PlanName.BASIC)
    world.admit(user)  # caches the plan
    cached = [world.keys.plan_effective(user), world.keys.boost_until(user)]
    world.port.set(cached[1], "0")
    assert [world.port.get(k) is not None for k in cached] == [True, True]
    world.enforcer.invalidate_plan(user)
    assert [world.port.get(k) for k in cached] == [None, None]


def test_admission_sends_the_enforcers_own_settings(
    port: RedisPort, run_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's defaults (no time offset, Idempotency-Keys kept 24 h, the plan table of
    plans.py) and the deployment's numbers, slot by slot, for the request's lane."""
    plans = FakePlans()
    enforcer = Enforcer(
        port, Keys(f"{run_prefix}:{uuid.uuid4().hex[:6]}"), plans, FakeUsage(),
        lease_ttl_s=61, plan_cache_ttl_s=601, provider_caps={Lane.INTERACTIVE: 7, Lane.BATCH: 3},
    )  # fmt: skip
    user = f"u{uuid.uuid4().hex[:10]}"
    plans.plans[user] = PlanInfo(PlanName.PRO)
    calls = record_script_calls(monkeypatch, port)
    req = AdmissionRequest(
        user_id=user, scope=Scope.CREATE, lease_id=uuid.uuid4().hex, now=datetime.now(UTC),
        provider="minimax", model=MODEL, lane=Lane.BATCH, idem_key="k", fingerprint="f",
    )  # fmt: skip
    assert enforcer.admit(req).kind is AdmissionKind.ADMITTED
    names = [f.name for f in dataclasses.fields(AdmissionArgs)]
    slots = dict(zip(names, calls[-1].args, strict=True))
    assert {name: slots[name] for name in (
        "time_offset_ms", "lease_ttl_ms", "plan_cache_ttl_s", "provider_cap",
        "idempotency_record_ttl_s", "plan_table",
    )} == {
        "time_offset_ms": "0", "lease_ttl_ms": "61000", "plan_cache_ttl_s": "601",
        "provider_cap": "3", "idempotency_record_ttl_s": "86400",
        "plan_table": plan_table(PLANS),
    }  # fmt: skip


def test_the_wrappers_read_the_injected_clock_not_the_system_one(
    port: RedisPort, run_prefix: str
) -> None:
    then = datetime.now(UTC) + timedelta(days=45, hours=3)  # another month and hour (a past
    plans = FakePlans()  # one would not do: counters expire at their period's end + grace)
    enforcer = Enforcer(
        port, Keys(f"{run_prefix}:{uuid.uuid4().hex[:6]}"), plans, FakeUsage(),
        lease_ttl_s=60, plan_cache_ttl_s=600, provider_caps={Lane.INTERACTIVE: 5, Lane.BATCH: 1},
        clock=FixedClock(then),
    )  # fmt: skip
    user = f"u{uuid.uuid4().hex[:10]}"
    plans.plans[user] = PlanInfo(PlanName.BASIC)
    assert enforcer.enforce_monthly_pool(user).resets_at == month_end(then)
    assert enforcer.enforce_hourly_burst(user).resets_at == hour_end(then)


def test_counters_that_cannot_be_settled_fail_closed_after_four_trips(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter that vanishes between its seed and the retry (here: a period so far past
    that its seeded counter expires at once) is retried a bounded number of times, then
    the paid limit fails closed with a 503."""
    user = world.user(PlanName.BASIC)
    calls = record_script_calls(monkeypatch, world.port)
    long_ago = datetime(2020, 2, 10, 9, 30, tzinfo=UTC)
    with pytest.raises(ServiceUnavailable) as info:
        world.admit(user, now=long_ago)
    assert info.value.message == "Usage counters could not be settled; retry shortly."
    assert [call.name for call in calls] == ["admission"] * 4


def test_credits_low_is_noticed_on_the_unit_that_leaves_the_mark_only(world: World) -> None:
    user = world.user(PlanName.BASIC)
    world.usage.month[(user, month_label(world.now))] = PLANS[PlanName.BASIC].generations_per_month
    expires_ms = int((world.now + timedelta(days=30)).timestamp() * 1000)
    world.usage.credits[user] = f"c1:{expires_ms}:{LOW_CREDIT_MARK + 2}:0:grant"
    seen = []
    for _ in range(3):
        ticket = world.ticket(user)  # the pool is spent: the grant pays
        seen.append((ticket.credit_id, ticket.credits_left, ticket.notices))
        world.enforcer.release(ticket.lease)
    assert seen == [
        ("c1", LOW_CREDIT_MARK + 1, ()),
        ("c1", LOW_CREDIT_MARK, ("credits_low",)),
        ("c1", LOW_CREDIT_MARK - 1, ()),
    ]


def test_a_first_usage_read_costs_two_trips_whatever_is_missing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plan, counters and credits all missing: the first call names them all at once, the
    second carries them; never a third."""
    user = world.user(PlanName.STANDARD)
    calls = record_script_calls(monkeypatch, world.port)
    assert world.enforcer.usage(user, world.now).generations.used == 0
    assert [call.name for call in calls] == ["usage", "usage"]


def test_aborting_a_regeneration_lifts_its_drafts_cooldown(world: World) -> None:
    user = world.user(PlanName.PRO)
    ticket = world.ticket(user, Scope.REGEN_TARGETED, draft_id="d")
    assert refusal_code(world.admit(user, Scope.REGEN_TARGETED, draft_id="d")) in (
        "COOLDOWN_ACTIVE", "CONCURRENCY_LIMIT",
    )  # fmt: skip
    assert world.enforcer.abort(ticket) is True
    assert world.port.get(world.keys.regen_cooldown(user, "d")) is None
    assert world.admit(user, Scope.REGEN_TARGETED, draft_id="d").kind is AdmissionKind.ADMITTED
