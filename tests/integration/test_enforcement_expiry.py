"""What the scripts leave behind expires when it should, and the limits hold exactly at
their edge: TTLs are read back as values (not just "has one"), boundaries are probed at
the very millisecond or second, and the over-limit re-acquire is tried with the other
slots genuinely full."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from shared.enforcement import Scope, StoredResponse
from shared.enforcement.scripts.admission import AdmissionKind
from shared.enforcement.scripts.common import hour_expireat_s, month_expireat_s
from shared.enforcement.values import Meter
from shared.plans import PLANS, PlanName
from shared.redis import RedisPort, ScriptRegistry
from shared.redis.keys import hour_end, hour_key, month_end, month_key
from shared.redis.scripts import LUA_DIR
from tests.integration.test_enforcement_admission import World, make_world, refusal_code

HOUR_MS = 3_600_000
SLACK_MS = 5_000  # a slow CI machine between the write and the read-back


@pytest.fixture
def world(port: RedisPort, run_prefix: str) -> World:
    return make_world(port, run_prefix)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """Plain redis-py, to read TTLs (the ports deliberately have no TTL read)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def _ms_until(moment: datetime) -> int:
    return int((moment - datetime.now(UTC)).total_seconds() * 1000)


def _ms_until_epoch_s(expireat_s: int) -> int:
    return _ms_until(datetime.fromtimestamp(expireat_s, UTC))


def assert_pttl(raw: redis.Redis, key: str, expected_ms: int) -> None:
    """The key expires in ``expected_ms`` (measured now), give or take the slack."""
    pttl = int(raw.pttl(key))
    assert pttl > 0, f"{key}: PTTL {pttl} (-1 = never expires, -2 = missing)"
    assert expected_ms - SLACK_MS <= pttl <= expected_ms + SLACK_MS, (key, pttl, expected_ms)


def test_the_lease_record_expires_an_hour_after_its_lease(world: World, raw: redis.Redis) -> None:
    ticket = world.ticket(world.user(PlanName.STANDARD))
    assert_pttl(raw, world.keys.lease(ticket.lease.lease_id), 60_000 + HOUR_MS)


def test_counters_seeded_by_a_usage_read_expire_at_their_period_end(
    world: World, raw: redis.Redis
) -> None:
    user, now = world.user(PlanName.BASIC), world.now
    world.usage.month[(user, now.strftime("%Y-%m"))] = 7
    assert world.enforcer.usage(user, now).generations.used == 7  # seeds, charges nothing
    month_ms = _ms_until_epoch_s(month_expireat_s(now))
    assert month_ms > _ms_until(month_end(now))  # the period's end plus grace
    assert_pttl(raw, world.keys.gen_used(user, month_key(now)), month_ms)
    assert_pttl(raw, world.keys.full_regen_used(user, month_key(now)), month_ms)
    hour_ms = _ms_until_epoch_s(hour_expireat_s(now))
    assert hour_ms > _ms_until(hour_end(now))
    assert_pttl(raw, world.keys.gen_hour(user, hour_key(now)), hour_ms)


def test_counters_seeded_by_a_refusal_expire_at_their_period_end(
    world: World, raw: redis.Redis
) -> None:
    user, now = world.user(PlanName.BASIC), world.now
    world.usage.month[(user, now.strftime("%Y-%m"))] = PLANS[PlanName.BASIC].generations_per_month
    assert refusal_code(world.admit(user)) == "MONTHLY_QUOTA_EXCEEDED"
    key = world.keys.gen_used(user, month_key(now))
    assert raw.get(key) == str(PLANS[PlanName.BASIC].generations_per_month)
    assert_pttl(raw, key, _ms_until_epoch_s(month_expireat_s(now)))


def test_a_completed_idempotency_record_lives_24_hours_from_completion(
    world: World, raw: redis.Redis
) -> None:
    enforcer, user = world.enforcer, world.user()
    key = world.keys.idem(user, "assets", "k")
    response = StoredResponse(201, "{}", {})
    # A request that was pending for almost the whole window: completing it restarts 24 h.
    enforcer.get_or_set_idempotency(user, "assets", "k", "a")
    raw.pexpire(key, 2_000)
    assert enforcer.complete_idempotent(user, "assets", "k", "a", response) is True
    assert_pttl(raw, key, 86_400_000)
    # The pending record is gone (expired, or dropped by an account deletion): nothing is
    # written back, so a record without its window can never appear.
    raw.delete(key)
    assert enforcer.complete_idempotent(user, "assets", "k", "a", response) is False
    assert raw.exists(key) == 0


def test_the_ticket_carries_each_plan_limit_in_its_own_meter(world: World) -> None:
    plan = PLANS[PlanName.STANDARD]
    ticket = world.ticket(world.user(PlanName.STANDARD))
    assert ticket.monthly == Meter(1, plan.generations_per_month, month_end(world.now))
    assert ticket.hourly == Meter(1, plan.generations_per_hour, hour_end(world.now))


@pytest.mark.parametrize("plan", [PlanName.STANDARD, PlanName.PRO])
def test_an_expired_lease_cannot_reacquire_when_its_users_slots_are_full(
    port: RedisPort, run_prefix: str, plan: PlanName
) -> None:
    world = make_world(port, run_prefix, provider_cap=50)  # the provider is never the limit
    limit = PLANS[plan].concurrent_jobs
    user = world.user(plan)
    stale = world.ticket(user)
    world.enforcer.time_offset_ms = 61_000  # the 60 s lease has expired, never released
    others = [world.ticket(user) for _ in range(limit)]  # every slot held by a live lease
    assert world.enforcer.usage(user, world.now).concurrency.used == limit
    busy = world.enforcer.refresh_lease(stale.lease, plan)
    assert (busy.state, busy.code) == ("busy", "CONCURRENCY_LIMIT")
    assert world.enforcer.usage(user, world.now).concurrency.used == limit
    world.enforcer.release(others[0].lease)  # one slot free: now it may come back
    assert world.enforcer.refresh_lease(stale.lease, plan).state == "reacquired"
    assert world.enforcer.usage(user, world.now).concurrency.used == limit


# ---- the boost's edge, on the fragment the scripts share ----------------------------------


def fragment_probe(tmp_path: Path, fragment: str, body: str) -> str:
    """A script that includes the real ``lib/<fragment>.lua`` and runs ``body``, so script
    time is an argument: an edge is hit at exactly its millisecond."""
    (tmp_path / "lib").symlink_to(LUA_DIR / "lib")
    (tmp_path / "probe.lua").write_text(f"--#include {fragment}\n{body}\n")
    return ScriptRegistry(tmp_path).get("probe").source


@pytest.fixture
def effective_plan_probe(tmp_path: Path) -> str:
    """``plan_cache``'s effective plan of (base, boost ms, now ms)."""
    body = "return effective_plan(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))"
    return fragment_probe(tmp_path, "plan_cache", body)


def test_a_boost_ends_exactly_at_its_expiry_millisecond(
    raw: redis.Redis, effective_plan_probe: str
) -> None:
    boost_ms = 1_800_000_000_000

    def plan_at(now_ms: int, base: str = "basic") -> str:
        return str(raw.eval(effective_plan_probe, 0, base, boost_ms, now_ms))

    assert plan_at(boost_ms - 1) == "pro"
    assert plan_at(boost_ms) == "basic"  # SPEC §2: Pro while now < expiry, not at it
    assert plan_at(boost_ms + 1) == "basic"
    assert plan_at(boost_ms, base="none") == "none"
    assert str(raw.eval(effective_plan_probe, 0, "basic", 0, boost_ms)) == "basic"


def test_the_python_rule_and_the_script_agree_at_the_edge(
    raw: redis.Redis, effective_plan_probe: str
) -> None:
    from shared.plans import resolve_effective_plan

    expiry = datetime(2027, 1, 15, 12, tzinfo=UTC)
    boost_ms = int(expiry.timestamp() * 1000)
    for delta_ms in (-1, 0, 1):
        now = expiry + timedelta(milliseconds=delta_ms)
        python = resolve_effective_plan(PlanName.BASIC, expiry, now)
        script = str(raw.eval(effective_plan_probe, 0, "basic", boost_ms, boost_ms + delta_ms))
        assert python is not None
        assert script == python.value, delta_ms


# ---- the cooldown's edge: over at its until instant, never "0 ms left" -------------------

_EDGE_TRIES = 150


def _redis_now_ms(raw: redis.Redis) -> int:
    sec, usec = raw.time()
    return int(sec) * 1000 + int(usec) // 1000


def test_a_cooldown_is_over_at_its_until_millisecond(raw: redis.Redis, world: World) -> None:
    # Script time can't be pinned, but it can be aimed: until = TIME + 1 s, offset 1 s, so
    # a script that runs within the same millisecond as the TIME read sees now == until
    # exactly (most tries on a local Redis). At that instant the cooldown is over.
    key = world.keys.regen_cooldown("u", "edge")
    for _ in range(_EDGE_TRIES):
        until = _redis_now_ms(raw) + 1_000
        raw.set(key, until)
        reply = world.port.run("cooldown", [key], [1_000, 20_000])
        assert reply == [1, 0], f"refused with {reply[1]} ms left at until={until}"


def test_a_regeneration_is_admitted_at_the_cooldowns_until_millisecond(
    raw: redis.Redis, world: World
) -> None:
    user = world.user(PlanName.PRO)  # the highest hourly limit: room for every try
    key = world.keys.regen_cooldown(user, "d")
    world.enforcer.time_offset_ms = 1_000
    for _ in range(min(_EDGE_TRIES, PLANS[PlanName.PRO].generations_per_hour - 1)):
        raw.set(key, _redis_now_ms(raw) + 1_000)
        admission = world.admit(user, Scope.REGEN_TARGETED, draft_id="d")
        assert admission.kind is AdmissionKind.ADMITTED, admission
        assert admission.ticket is not None
        world.enforcer.release(admission.ticket.lease)


def test_a_zero_cooldown_starts_nothing(world: World, raw: redis.Redis) -> None:
    key = world.keys.regen_cooldown("u", "zero")
    assert world.port.run("cooldown", [key], [0, 0]) == [1, 0]
    assert raw.exists(key) == 0


# ---- a refresh renews everything a lease holds -------------------------------------------


def test_a_refresh_extends_the_provider_slot_and_the_record(
    port: RedisPort, run_prefix: str, raw: redis.Redis
) -> None:
    world = make_world(port, run_prefix, provider_cap=1)
    user = world.user(PlanName.PRO)
    request = world.request(user)
    first = world.enforcer.admit(request)
    assert first.ticket is not None
    world.enforcer.time_offset_ms = 50_000  # 10 s before the 60 s lease ends
    status = world.enforcer.refresh_lease(first.ticket.lease, PlanName.PRO)
    assert status.state == "held"
    assert status.expires_at is not None
    assert status.expires_at >= first.ticket.lease_expires_at + timedelta(seconds=50)
    # Past the first expiry, within the refreshed one: the only provider slot is still held.
    world.enforcer.time_offset_ms = 70_000
    assert refusal_code(world.admit(world.user(PlanName.PRO))) == "PROVIDER_BUSY"
    # A retried admission of the lease (a lost reply) answers with the refreshed expiry.
    again = world.enforcer.admit(request)
    assert again.ticket is not None
    assert again.ticket.lease_expires_at == status.expires_at


def test_a_refresh_renews_the_lease_records_hour(world: World, raw: redis.Redis) -> None:
    ticket = world.ticket(world.user(PlanName.STANDARD))
    record = world.keys.lease(ticket.lease.lease_id)
    raw.pexpire(record, 5_000)  # as if the job had run for most of the record's life
    assert world.enforcer.refresh_lease(ticket.lease, PlanName.STANDARD).state == "held"
    assert_pttl(raw, record, 60_000 + HOUR_MS)


def test_a_counter_that_lost_its_expiry_gets_it_back_on_the_next_charge(
    world: World, raw: redis.Redis
) -> None:
    user, now = world.user(PlanName.BASIC), world.now
    key = world.keys.gen_hour(user, hour_key(now))
    raw.set(key, 3)  # no TTL: written by hand, restored from a backup, PERSISTed…
    expireat = hour_expireat_s(now)
    assert world.port.run("counter_with_limit", [key], [10, 1, expireat, ""]) == ["ok", 4, 10]
    assert_pttl(raw, key, _ms_until_epoch_s(expireat))


# ---- a slot is no longer held at its expiry millisecond ----------------------------------


def test_a_slot_expiring_now_is_not_held_by_semaphore_acquire(
    world: World, raw: redis.Redis
) -> None:
    key = world.keys.user_leases("edge")
    raw.zadd(key, {"other": 4_102_444_800_000})  # the only slot (limit 1), held for good
    for _ in range(_EDGE_TRIES):
        raw.zadd(key, {"mine": _redis_now_ms(raw) + 1_000})  # expires exactly at script time
        reply = world.port.run("semaphore_acquire", [key], [1_000, "mine", 1, 60_000])
        assert reply[0] == 0, "a slot at its expiry millisecond was taken as still held"


@pytest.mark.parametrize("full", ["user", "provider"])
def test_a_lease_expiring_now_is_not_held_by_refresh_lease(
    world: World, raw: redis.Redis, full: str
) -> None:
    # One semaphore full (limit 1, held for good by another lease), the other free: only
    # a wrong "still held" on the full one lets the refresh through.
    user_sem, provider_sem = world.keys.user_leases("edge"), world.keys.provider("p", "m", "l")
    record, token = world.keys.lease("mine"), world.keys.qstash_token("unused")
    raw.zadd(user_sem if full == "user" else provider_sem, {"other": 4_102_444_800_000})
    limit, cap = (1, 50) if full == "user" else (50, 1)
    for _ in range(_EDGE_TRIES):
        expires = _redis_now_ms(raw) + 1_000
        raw.zadd(user_sem, {"mine": expires})
        raw.zadd(provider_sem, {"mine": expires})
        reply = world.port.run(
            "refresh_lease", [user_sem, provider_sem, record, token],
            [1_000, "mine", 60_000, limit, cap, "", ""],
        )  # fmt: skip
        assert reply[0] == "busy", "a lease at its expiry millisecond was extended as held"


def test_a_pending_idempotency_record_expires_in_24_hours(world: World, raw: redis.Redis) -> None:
    # A request that never completes (its process killed) must not pin its key forever.
    user = world.user(PlanName.PRO)
    world.enforcer.get_or_set_idempotency(user, "assets", "pending", "a")
    assert_pttl(raw, world.keys.idem(user, "assets", "pending"), 86_400_000)
    world.ticket(user, idem_key="adm", fingerprint="f")
    assert_pttl(raw, world.keys.idem(user, "create", "adm"), 86_400_000)


# ---- which credit pays: unexpired, not used up, earliest expiry, then lowest id ----------


@pytest.fixture
def credit_pick_probe(tmp_path: Path) -> str:
    """The real ``credits`` fragment asked which credit pays, and how many units are left,
    at an exact millisecond."""
    body = (
        "local now = tonumber(ARGV[1])\n"
        "return {credit_pick(KEYS[1], now) or '', credits_left(KEYS[1], now)}"
    )
    return fragment_probe(tmp_path, "credits", body)


def test_the_credit_that_pays_is_the_earliest_to_expire_then_the_lowest_id(
    raw: redis.Redis, credit_pick_probe: str, run_prefix: str
) -> None:
    key = f"{run_prefix}:credit-pick"
    expires = 1_800_000_000_000
    tied = ["d", "b", "f", "a", "e", "c"]  # one expiry for all six: the id decides
    fields = {"_": "1", "c:z": f"{expires + 1}:5:pack", "u:z": "0"}
    for credit in tied:
        fields[f"c:{credit}"], fields[f"u:{credit}"] = f"{expires}:5:pack", "0"
    raw.hset(key, mapping=fields)

    def pick(now_ms: int) -> str:
        return str(raw.eval(credit_pick_probe, 1, key, now_ms)[0])

    def left(now_ms: int) -> int:
        return int(raw.eval(credit_pick_probe, 1, key, now_ms)[1])

    order = []
    for _ in tied:
        order.append(pick(expires - 1))
        raw.hset(key, f"u:{order[-1]}", "5")  # used up: the next one pays
    assert order == sorted(tied)
    assert pick(expires - 1) == "z"
    assert left(expires - 1) == 5  # the six used up count for nothing
    for credit in tied:
        raw.hset(key, f"u:{credit}", "0")
    assert pick(expires - 1) == "a"
    assert left(expires - 1) == 35
    assert pick(expires) == "z"  # the six expire at that millisecond: not usable then
    assert left(expires) == 5
    assert pick(expires + 1) == ""
    assert left(expires + 1) == 0
