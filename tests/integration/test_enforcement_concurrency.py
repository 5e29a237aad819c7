"""Races: N threads (and N processes) admitting for one basic user never win one more slot
than the plan allows (concurrency 1 while a lease is held; 10 per hour with releases).

Each test pins its ``now`` once: admissions pick the hour's counter from it, and a run
that straddled an hour boundary once counted 13 winners in two hours instead of 9."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from shared.enforcement import AdmissionRequest, AdmissionTicket, Enforcer, Scope
from shared.enforcement.ports import PlanInfo
from shared.enforcement.scripts.admission import Admitted, Refused
from shared.plans import Lane, PlanName
from shared.redis import Keys, RedisPort, TcpRedis
from tests.support.enforcement_sources import FakePlans, FakeUsage

THREADS = 200
_T = TypeVar("_T")
PROCESSES = 8


def make_enforcer(redis_port: RedisPort, prefix: str, user: str) -> Enforcer:
    plans = FakePlans({user: PlanInfo(PlanName.BASIC)})
    return Enforcer(
        redis_port,
        Keys(prefix),
        plans,
        FakeUsage(),
        lease_ttl_s=60,
        plan_cache_ttl_s=600,
        provider_caps={Lane.INTERACTIVE: 1000, Lane.BATCH: 1},
    )


def admit_once(enforcer: Enforcer, user: str, now: datetime) -> tuple[str, AdmissionTicket | None]:
    """Admit one create at ``now``: (outcome code, ticket when admitted)."""
    request = AdmissionRequest(
        user_id=user,
        scope=Scope.CREATE,
        lease_id=uuid.uuid4().hex,
        now=now,
        provider="minimax",
        model="race",
    )
    admission = enforcer.admit(request)
    if isinstance(admission, Refused):
        return admission.refusal.code, None
    return admission.kind.value, admission.ticket if isinstance(admission, Admitted) else None


def admit_until_hour_is_spent(enforcer: Enforcer, user: str, now: datetime) -> list[str]:
    """Keep admitting (releasing each win at once) until the hourly limit answers."""
    codes: list[str] = []
    while not codes or codes[-1] != "HOURLY_LIMIT_EXCEEDED":
        code, ticket = admit_once(enforcer, user, now)
        if ticket is not None:
            enforcer.release(ticket.lease)
        codes.append(code)
    return codes


def race(run: Callable[[], _T], n: int) -> list[_T]:
    barrier = threading.Barrier(n)

    def go() -> _T:
        barrier.wait()
        return run()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: go(), range(n)))


@pytest.mark.slow
def test_threads_never_win_one_more(port: RedisPort, run_prefix: str) -> None:
    user, prefix = f"race{uuid.uuid4().hex[:8]}", f"{run_prefix}:{uuid.uuid4().hex[:6]}"
    enforcer, now = make_enforcer(port, prefix, user), datetime.now(UTC)
    held = race(lambda: admit_once(enforcer, user, now), THREADS)
    winners = [ticket for code, ticket in held if ticket is not None]
    assert len(winners) == 1
    assert {code for code, _ in held} == {"admitted", "CONCURRENCY_LIMIT"}
    assert enforcer.release(winners[0].lease)
    codes = [
        c
        for chunk in race(lambda: admit_until_hour_is_spent(enforcer, user, now), THREADS)
        for c in chunk
    ]
    assert codes.count("admitted") == 9  # 10 per hour, one of them won above
    assert set(codes) == {"admitted", "CONCURRENCY_LIMIT", "HOURLY_LIMIT_EXCEEDED"}
    usage = enforcer.usage(user, now)
    assert (usage.hourly.used, usage.generations.used, usage.concurrency.used) == (10, 10, 0)


def _process_worker(args: tuple[str, str, str, int, datetime]) -> list[str]:
    redis_url, prefix, user, n, now = args
    enforcer = make_enforcer(TcpRedis.from_url(redis_url, timeout_s=10), prefix, user)
    chunks = race(lambda: admit_until_hour_is_spent(enforcer, user, now), n)
    return [code for chunk in chunks for code in chunk]


@pytest.mark.slow
def test_processes_never_win_one_more(redis_url: str, run_prefix: str) -> None:
    user, prefix = f"race{uuid.uuid4().hex[:8]}", f"{run_prefix}:{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    jobs = [(redis_url, prefix, user, THREADS // PROCESSES, now)] * PROCESSES
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        codes = [code for chunk in pool.map(_process_worker, jobs) for code in chunk]
    assert sum(code == "admitted" for code in codes) == 10
    assert set(codes) <= {"admitted", "CONCURRENCY_LIMIT", "HOURLY_LIMIT_EXCEEDED"}
    enforcer = make_enforcer(TcpRedis.from_url(redis_url), prefix, user)
    usage = enforcer.usage(user, now)
    assert (usage.hourly.used, usage.generations.used, usage.concurrency.used) == (10, 10, 0)
