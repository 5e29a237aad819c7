"""The event stream's cost on real Postgres and Redis (``shared.services.events``): while
it waits it holds no Postgres connection and makes one Redis call per 250 ms; Postgres is
read only when it opens and after a move was published. Time is a fake clock that the
stream's own sleeps advance; the worker runs for real in the middle of the wait."""

from __future__ import annotations

import dataclasses
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from devtools.compose import dev_container
from devtools.offline_writer import OfflineWriter
from shared.ai import ProviderError
from shared.api.handlers.generation import accepted_response
from shared.api.models import CreateRequest
from shared.bootstrap import Container
from shared.db import GenerationStatus, SubscriptionStatus
from shared.plans import PlanName
from shared.services import events, generation, worker
from shared.services.events import Event, Retry, StatusBoard, StreamConfig, StreamDeps
from shared.services.leases import lease_of
from tests.support.worker_env import CapturingQueue, worker_settings


@pytest.fixture(scope="module")
def container(database_url: str, redis_url: str, run_prefix: str) -> Iterator[Container]:
    settings = worker_settings(
        {
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"{run_prefix}ev",
            "QUEUE_BACKEND": "local",
            "AI_PROVIDER": "offline",
        }
    )
    c = dev_container(settings, llm=OfflineWriter(latency_s=0.0), queue=CapturingQueue())
    yield c
    c.db.close()


class _CountingDb:
    """The real ``Database``; counts units of work and how many are open right now."""

    def __init__(self, real: Any) -> None:
        self._real, self.opened, self.open = real, 0, 0

    @contextmanager
    def _count(self, unit: Any) -> Iterator[Any]:
        self.opened += 1
        self.open += 1
        try:
            with unit as uow:
                yield uow
        finally:
            self.open -= 1

    def autocommit(self) -> Any:
        return self._count(self._real.autocommit())

    def uow(self) -> Any:
        return self._count(self._real.uow())


class _CountingRedis:
    def __init__(self, real: Any) -> None:
        self._real, self.calls = real, 0

    def get(self, key: str) -> str | None:
        self.calls += 1
        value: str | None = self._real.get(key)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Clock:
    """Fake monotonic time; each sleep advances it and may run the test's move."""

    def __init__(self, db: _CountingDb, redis: _CountingRedis) -> None:
        self.t, self.sleeps, self._db, self._redis = 0.0, 0, db, redis
        self.at: dict[int, Any] = {}
        self.redis_calls_at_sleep: list[int] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert self._db.open == 0, "a Postgres connection is held while waiting"
        self.redis_calls_at_sleep.append(self._redis.calls)
        self.sleeps += 1
        self.t += seconds
        if self.sleeps in self.at:
            self.at.pop(self.sleeps)()


def _queued(c: Container) -> tuple[str, uuid.UUID]:
    user_id = f"u-{secrets.token_hex(6)}"
    with c.db.uow() as uow:
        uow.users.ensure(user_id)
        uow.subscriptions.upsert(user_id, PlanName.PRO, SubscriptionStatus.ACTIVE)
        uow.commit()
    body = {"brief": "water", "platform": "tiktok"}
    req = CreateRequest.model_validate(body)
    deps = generation.GenerationDeps(
        db=c.db, enforcer=c.enforcer, queue=c.queue, now=c.now, provider="offline",
        model=c.llm.model,
    )  # fmt: skip
    cmd = generation.CreateGeneration(
        user_id=user_id, brief=req.brief, platform=req.platform, variants=1, title=None,
        tone=None, duration_seconds=30, language="en", body=body, idem_key=None,
        request_id="req-ev",
    )  # fmt: skip
    response, _ = generation.create(deps, cmd, accepted_response)
    return user_id, uuid.UUID(json.loads(response.body)["generation_id"])


def _stream(c: Container, max_open_s: float) -> tuple[_CountingDb, _CountingRedis, _Clock, Any]:
    db, redis = _CountingDb(c.db), _CountingRedis(c.redis)
    clock = _Clock(db, redis)
    deps = StreamDeps(
        db=db,  # type: ignore[arg-type]
        board=StatusBoard(redis, c.keys),  # type: ignore[arg-type]
        sleep=clock.sleep,
        monotonic=clock.monotonic,
    )
    return db, redis, clock, (deps, StreamConfig(max_open_s=max_open_s))


def test_waiting_holds_no_postgres_and_makes_one_redis_call_per_poll(
    container: Container,
) -> None:
    c = container
    user_id, gid = _queued(c)
    db, redis, clock, (deps, cfg) = _stream(c, max_open_s=60)
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    job = queue.jobs[str(gid)]
    # After the 20th poll's sleep (5 s of waiting) the worker runs the job to its end.
    clock.at[20] = lambda: worker.run_job(c.worker_deps(), job)

    stream = events.open_stream(deps, user_id, gid, 0, cfg)
    assert stream is not None
    items = list(stream)

    statuses = [i.status for i in items if isinstance(i, Event)]
    assert statuses == [
        GenerationStatus.QUEUED,
        GenerationStatus.RUNNING,
        GenerationStatus.SUCCEEDED,
    ]
    assert [i.id for i in items if isinstance(i, Event)] == [1, 2, 3]
    assert len(items[-1].variants) == 1  # type: ignore[union-attr]
    # One GET per poll, polls 250 ms apart: the 20th (at 5 s) saw the move.
    assert clock.sleeps == 20
    assert redis.calls == 20
    assert clock.redis_calls_at_sleep == list(range(20))
    assert clock.t == pytest.approx(20 * events.POLL_S)
    # Postgres: the read on open and one after the published move, nothing in between.
    assert db.opened == 2


def test_the_stream_closes_itself_with_a_retry_hint(container: Container) -> None:
    c = container
    user_id, gid = _queued(c)
    db, redis, clock, (deps, cfg) = _stream(c, max_open_s=2)

    stream = events.open_stream(deps, user_id, gid, 0, cfg)
    assert stream is not None
    items = list(stream)

    assert [type(i) for i in items] == [Event, Retry]
    assert clock.t == pytest.approx(2.0)
    assert (redis.calls, db.opened) == (8, 1)


def test_a_status_published_ahead_of_its_commit_is_sent_only_once_committed(
    container: Container,
) -> None:
    """The worker's lease refresh publishes ``running`` just before the claim commits
    (events.py, the publishing rule). A stream polling in between reads Postgres, finds
    the job still queued and sends nothing; it reads again at each poll while the hint is
    ahead, and sends ``running`` at the first poll after the commit."""
    c = container
    user_id, gid = _queued(c)
    db, _redis, clock, (deps, cfg) = _stream(c, max_open_s=3)
    with c.db.autocommit() as uow:
        gen = uow.generations.get_any(gid)
    assert gen is not None
    lease = lease_of(gen, gen.attempts)
    note = StatusBoard.note(gid, GenerationStatus.RUNNING)

    def refresh() -> None:  # the hint, at sleep 4: its claim has not committed yet
        assert c.enforcer.refresh_lease(lease, gen.plan, note=note).ok
        assert StatusBoard(c.redis, c.keys).read(gid) is GenerationStatus.RUNNING

    def claim() -> None:  # the commit, at sleep 8
        with c.db.autocommit() as uow:
            assert uow.generations.claim_queued(gid, c.now(), gen.attempts) is not None

    clock.at[4], clock.at[8] = refresh, claim
    stream = events.open_stream(deps, user_id, gid, 0, cfg)
    assert stream is not None
    sent: list[tuple[GenerationStatus, int]] = []
    for item in stream:
        if isinstance(item, Event):
            sent.append((item.status, clock.sleeps))
    assert sent == [(GenerationStatus.QUEUED, 0), (GenerationStatus.RUNNING, 8)]
    # Postgres: the open, then one read per poll while the hint was ahead (polls 4-8).
    assert db.opened == 1 + 5
    c.enforcer.release(lease)


class _Failing:
    """A provider that fails for good (no retry), having spent some tokens."""

    model = "offline"

    def generate(self, job: Any, *, deadline: float) -> Any:
        raise ProviderError("BAD_OUTPUT", "No usable variants.", transient=False, prompt_tokens=7)


@pytest.mark.parametrize("fails", [False, True], ids=["succeeded", "failed"])
def test_the_worker_publishes_both_moves_inside_its_two_script_calls(
    container: Container, fails: bool
) -> None:
    """``running`` rides the lease refresh and the terminal status the release (or the
    refund): a job is 2 Redis calls with both publishes, as it was before the streams."""
    c = container
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    deps = c.worker_deps(_Failing() if fails else None)  # type: ignore[arg-type]
    _, warm = _queued(c)  # the scripts loaded (no NOSCRIPT retry in the count)
    worker.run_job(deps, queue.jobs[str(warm)])
    _, gid = _queued(c)
    seen: list[GenerationStatus | None] = []
    board = StatusBoard(c.redis, c.keys)
    db = _CountingDb(c.db)

    class _Peeking(_CountingDb):  # the published status as the draft read (after the claim)
        def autocommit(self) -> Any:
            if db.opened == 2:
                seen.append(board.read(gid))
            return db.autocommit()

    trips = c.redis.round_trips
    result = worker.run_job(dataclasses.replace(deps, db=_Peeking(c.db)), queue.jobs[str(gid)])
    assert result is (worker.JobResult.FAILED if fails else worker.JobResult.SUCCEEDED)
    assert c.redis.round_trips - trips == 2 + len(seen)  # the test's own peek: 1 GET
    assert seen == [GenerationStatus.RUNNING]
    expected = GenerationStatus.FAILED if fails else GenerationStatus.SUCCEEDED
    assert board.read(gid) is expected
