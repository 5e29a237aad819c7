"""The worker service on real Postgres and Redis, with the other party of a race run at
the exact step where it hurts (STYLE 24): each test seeds the interleaving by running the
competitor inside a hook, then checks the job still ends exactly once with nothing held.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest

from devtools.fake_minimax import FakeMiniMax, ok
from shared.ai import Completion, GenerationJob, ProviderError
from shared.api.handlers.generation import accepted_response
from shared.api.models import CreateRequest
from shared.bootstrap import Container
from shared.db import SubscriptionStatus
from shared.enforcement import Enforcer, LeaseRef
from shared.enforcement.scripts.refresh_lease import LeaseStatus
from shared.errors import ServiceUnavailable
from shared.plans import Lane, PlanName
from shared.queue import JobPayload
from shared.services import generation, worker
from tests.support.worker_env import (
    MODEL,
    CapturingQueue,
    fake_minimax_container,
)

RUNTIME_S = 30


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMiniMax]:
    with FakeMiniMax(default=ok()) as f:
        yield f


@pytest.fixture(scope="module")
def container(
    database_url: str, redis_url: str, run_prefix: str, fake: FakeMiniMax
) -> Iterator[Container]:
    with fake_minimax_container(
        database_url, redis_url, f"{run_prefix}wi", fake.url, RUNTIME_S
    ) as c:
        yield c


def _deps(c: Container, **over: Any) -> worker.WorkerDeps:
    return dataclasses.replace(c.worker_deps(), **{"max_job_runtime_s": RUNTIME_S, **over})


def _queued_job(c: Container) -> JobPayload:
    """A new pro user with one queued generation (admitted: charged, lease held)."""
    user_id = f"u-{secrets.token_hex(6)}"
    with c.db.uow() as uow:
        uow.users.ensure(user_id)
        uow.subscriptions.upsert(user_id, PlanName.PRO, SubscriptionStatus.ACTIVE)
        uow.commit()
    deps = generation.GenerationDeps(
        db=c.db, enforcer=c.enforcer, queue=c.queue, now=c.now, provider="minimax", model=MODEL
    )
    body = {"brief": "water", "platform": "tiktok"}
    req = CreateRequest.model_validate(body)
    cmd = generation.CreateGeneration(
        user_id=user_id,
        brief=req.brief,
        platform=req.platform,
        variants=req.variants,
        title=req.title,
        tone=req.tone,
        duration_seconds=req.duration_seconds,
        language=req.language,
        body=body,
        idem_key=None,
        request_id=f"req-{secrets.token_hex(4)}",
    )
    response, _ = generation.create(deps, cmd, accepted_response)
    assert response.status == 202
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    return next(j for j in queue.jobs.values() if j.user_id == user_id)


def _usage(c: Container, user_id: str) -> tuple[int, int]:
    snap = c.enforcer.usage(user_id, c.now())
    return snap.generations.used, snap.concurrency.used


def _status(c: Container, job: JobPayload) -> tuple[str, str | None, int]:
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(job.generation_id))
        assert gen is not None
        ledger_rows = 1 if uow.ledger.get(gen.id) else 0
    return gen.status.value, gen.error_code, ledger_rows


class _DbWithHook:
    """The real ``Database``; ``hook`` runs once, right before its ``at``-th unit of work
    (transactional or autocommit)."""

    def __init__(self, real: Any, at: int, hook: Callable[[], object]) -> None:
        self._real, self._at, self._hook = real, at, hook
        self._count = 0

    def _next(self) -> None:
        self._count += 1
        if self._count == self._at:
            self._hook()

    def uow(self) -> Any:
        self._next()
        return self._real.uow()

    def autocommit(self) -> Any:
        self._next()
        return self._real.autocommit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _EnforcerWithHook:
    """The real ``Enforcer``; ``before_refresh`` runs once right before the first refresh."""

    def __init__(self, real: Enforcer, before_refresh: Callable[[], object]) -> None:
        self._real, self._hook = real, before_refresh

    def refresh_lease(self, *args: Any, **kw: Any) -> LeaseStatus:
        hook, self._hook = self._hook, None
        if hook:
            hook()
        return self._real.refresh_lease(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _LlmWithHook:
    """The real client; ``during`` runs while the provider is "thinking"; ``then`` (if
    given) replaces the real answer: raise from it to make the call fail."""

    def __init__(
        self,
        real: Any,
        during: Callable[[], object],
        then: Callable[[], Completion] | None = None,
    ) -> None:
        self._real, self._during, self._then = real, during, then
        self.provider, self.model = real.provider, real.model

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        self._during()
        if self._then is not None:
            return self._then()
        result: Completion = self._real.generate(job, deadline=deadline)
        return result


def test_delivery_that_loses_the_race_to_the_end_does_nothing(
    container: Container,
) -> None:
    """Read 'queued', then the other delivery runs the whole job and releases the lease,
    then our claim: it fails on a terminal job and nothing is taken or given back."""
    c = container
    job = _queued_job(c)
    winner = lambda: worker.run_job(_deps(c), job)  # noqa: E731
    outcome: list[worker.JobResult] = []
    # Unit of work 1 is our read; 2 would be our claim.
    loser = _deps(c, db=_DbWithHook(c.db, 2, lambda: outcome.append(winner())))

    assert worker.run_job(loser, job) is worker.JobResult.ALREADY_TERMINAL

    assert outcome == [worker.JobResult.SUCCEEDED]
    assert _status(c, job) == ("succeeded", None, 1)
    assert _usage(c, job.user_id) == (1, 0)


# ---- fencing: a delivery paused past the max runtime, then taken over ---------------------


def _claims(c: Container, job: JobPayload) -> int:
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(job.generation_id))
        assert gen is not None
        return gen.attempts


def _variants(c: Container, job: JobPayload) -> int:
    with c.db.uow() as uow:
        return len(uow.variants.list_for_generation(uuid.UUID(job.generation_id)))


def _late(c: Container) -> Callable[[], datetime]:
    """The take-over's clock: past the max runtime of the paused delivery's claim."""
    return lambda: c.now() + timedelta(seconds=RUNTIME_S + 1)


class _Pause:
    """A step of the old delivery that blocks until the test lets it go on."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.reached.set()
        assert self.go.wait(30), "the test never resumed the paused delivery"


def _take_over_while_paused(
    c: Container,
    job: JobPayload,
    old_deps: worker.WorkerDeps,
    pause: _Pause,
    old_party: Callable[[worker.WorkerDeps, JobPayload], object] = worker.run_job,
) -> tuple[object, dict[str, Any]]:
    """Run the old delivery (``old_party`` with ``old_deps``, which calls ``pause`` at one
    step) in a thread. Once it is paused, a take-over claims the job past the old claim's
    max runtime; while the take-over is inside MiniMax, the old party resumes and runs to
    its end. Returns its outcome (result or exception) and the state seen right after it
    ended, with the take-over still live (then ``live``: the take-over's own result)."""
    seen: dict[str, Any] = {}
    with ThreadPoolExecutor(1) as pool:
        old = pool.submit(old_party, old_deps, job)
        assert pause.reached.wait(10), "the old delivery never reached its paused step"

        def old_delivery_ends() -> None:
            pause.go.set()
            try:
                seen["old"] = old.result(timeout=30)
            except Exception as exc:  # the outcome is what the test checks
                seen["old"] = exc
            seen["status"] = _status(c, job)
            seen["claims"] = _claims(c, job)
            seen["variants"] = _variants(c, job)
            seen["usage"] = _usage(c, job.user_id)

        live = _deps(c, now=_late(c), llm=_LlmWithHook(c.llm, old_delivery_ends))
        seen["live"] = worker.run_job(live, job)
    return seen.pop("old"), seen


def _live_state(seen: dict[str, Any]) -> tuple[Any, ...]:
    return seen["status"], seen["claims"], seen["variants"], seen["usage"]


# Right after the old delivery ended: still running under claim 2, nothing written,
# the unit still charged and the live delivery's slot still held.
LIVE = (("running", None, 0), 2, 0, (1, 1))


def _finished_once(c: Container, job: JobPayload, seen: dict[str, Any]) -> None:
    assert seen["live"] is worker.JobResult.SUCCEEDED
    assert _status(c, job) == ("succeeded", None, 1)
    assert _variants(c, job) == 1
    assert _usage(c, job.user_id) == (1, 0)


def test_taken_over_delivery_cannot_succeed_or_free_the_live_slot(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    pause = _Pause()
    old = _deps(c, llm=_LlmWithHook(c.llm, pause))  # paused inside MiniMax

    result, seen = _take_over_while_paused(c, job, old, pause)

    assert result is worker.JobResult.ALREADY_TERMINAL
    assert _live_state(seen) == LIVE
    _finished_once(c, job, seen)


def test_taken_over_delivery_cannot_fail_refund_or_free_the_live_slot(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    pause = _Pause()

    def refused() -> Completion:
        raise ProviderError("CONTENT_POLICY", "refused", transient=False)

    old = _deps(c, llm=_LlmWithHook(c.llm, pause, then=refused))

    result, seen = _take_over_while_paused(c, job, old, pause)

    assert result is worker.JobResult.ALREADY_TERMINAL
    assert _live_state(seen) == LIVE
    _finished_once(c, job, seen)


def test_taken_over_delivery_that_crashes_keeps_its_hands_off_the_live_slot(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    pause = _Pause()

    def crash() -> Completion:
        raise RuntimeError("the paused worker dies on waking")

    old = _deps(c, llm=_LlmWithHook(c.llm, pause, then=crash))

    result, seen = _take_over_while_paused(c, job, old, pause)

    assert isinstance(result, RuntimeError)
    assert _live_state(seen) == LIVE
    _finished_once(c, job, seen)


def _died_after_its_claim(c: Container, job: JobPayload) -> None:
    """Claim 1 was made by a delivery that died right after it, a max runtime ago."""
    long_ago = c.now() - timedelta(seconds=RUNTIME_S + 1)
    with c.db.uow() as uow:
        assert uow.generations.claim(uuid.UUID(job.generation_id), long_ago, long_ago) == 1
        uow.commit()


def test_taken_over_delivery_cannot_refresh_the_lease_it_lost(
    container: Container, fake: FakeMiniMax
) -> None:
    """A job claimed before is claimed first, refreshed after. Paused between its claim
    (a take-over of a dead worker's claim) and its refresh: a newer take-over claims, so
    the refresh is refused (503, nothing written) and MiniMax is never called."""
    c = container
    job = _queued_job(c)
    _died_after_its_claim(c, job)
    pause = _Pause()
    calls = fake.calls
    old = _deps(c, enforcer=_EnforcerWithHook(c.enforcer, pause))

    result, seen = _take_over_while_paused(c, job, old, pause)

    assert isinstance(result, ServiceUnavailable)
    assert result.retry_after == worker.RUNNING_ELSEWHERE_RETRY_S
    assert _live_state(seen) == (("running", None, 0), 3, 0, (1, 1))
    _finished_once(c, job, seen)
    assert fake.calls - calls == 1  # the take-over's call only


def test_delivery_paused_between_its_refresh_and_its_claim_leaves_the_winner_alone(
    container: Container, fake: FakeMiniMax
) -> None:
    """A queued job is refreshed first (the script call that also checks the token),
    claimed after. Paused in between, another delivery claims and runs it: the late claim
    fails (the number it fenced on is no longer the job's), answers 503 and neither
    touches the winner's slots nor calls MiniMax."""
    c = container
    job = _queued_job(c)
    pause = _Pause()
    calls = fake.calls
    # Unit of work 1 reads the generation; 2 is the claim, after the refresh.
    old = _deps(c, db=_DbWithHook(c.db, 2, pause))

    result, seen = _take_over_while_paused(c, job, old, pause)

    assert isinstance(result, ServiceUnavailable)
    assert result.retry_after == worker.RUNNING_ELSEWHERE_RETRY_S
    assert _live_state(seen) == (("running", None, 0), 1, 0, (1, 1))
    _finished_once(c, job, seen)
    assert fake.calls - calls == 1  # the winner's call only


def test_delivery_dying_between_its_refresh_and_its_claim_blocks_no_refund(
    container: Container,
) -> None:
    """The refresh fences on the job's number as read, never ahead of Postgres: after a
    delivery died between refresh and claim, the failure callback (fenced on the number
    in Postgres) still fails, refunds and releases the job."""
    c = container
    job = _queued_job(c)
    gen_id = uuid.UUID(job.generation_id)
    with c.db.uow() as uow:  # claim 1 handed back (its slots were busy): queued, number 1
        assert uow.generations.claim(gen_id, c.now(), c.now()) == 1
        assert uow.generations.unclaim(gen_id, 1)
        uow.commit()

    def dies() -> None:
        raise RuntimeError("the worker dies between its refresh and its claim")

    with pytest.raises(RuntimeError):
        worker.run_job(_deps(c, db=_DbWithHook(c.db, 2, dies)), job)
    assert _status(c, job) == ("queued", None, 0)
    assert _claims(c, job) == 1

    late = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))
    assert worker.handle_failure_callback(late, job) is True
    assert _status(c, job) == ("failed", "DELIVERY_FAILED", 1)
    assert _usage(c, job.user_id) == (0, 0)


def test_delivery_while_another_runs_answers_503_and_keeps_its_lease(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    with c.db.uow() as uow:  # another delivery claimed it a second ago
        assert uow.generations.claim(uuid.UUID(job.generation_id), c.now(), c.now())
        uow.commit()

    with pytest.raises(ServiceUnavailable) as info:
        worker.run_job(_deps(c), job)

    assert info.value.retry_after == worker.RUNNING_ELSEWHERE_RETRY_S
    assert _usage(c, job.user_id) == (1, 1)
    assert _status(c, job) == ("running", None, 0)
    # Its failure callback (QStash gave up on this duplicate) leaves it running too.
    assert worker.handle_failure_callback(_deps(c), job) is False
    assert _usage(c, job.user_id) == (1, 1)
    # Once past its max runtime the callback may end it: refund once, release.
    late = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))
    assert worker.handle_failure_callback(late, job) is True
    assert worker.handle_failure_callback(late, job) is False
    assert _status(c, job) == ("failed", "DELIVERY_FAILED", 1)
    assert _usage(c, job.user_id) == (0, 0)


def test_sweeper_ending_the_job_while_the_provider_runs_wins_once(
    container: Container,
) -> None:
    """The worker hung past its runtime; the sweeper failed + refunded it meanwhile. The
    late answer must not flip it to succeeded, store variants or refund again."""
    c = container
    job = _queued_job(c)

    def sweeper_arrives() -> None:
        with c.db.uow() as uow:
            uow._session.run(
                "UPDATE generations SET started_at = started_at - interval '1 hour' "
                "WHERE id = CAST(:g AS uuid)",
                g=job.generation_id,
            )
            uow.commit()
        assert worker.sweep(_deps(c)) >= 1

    deps = _deps(c, llm=_LlmWithHook(c.llm, sweeper_arrives))

    assert worker.run_job(deps, job) is worker.JobResult.ALREADY_TERMINAL

    assert _status(c, job) == ("failed", "TIMED_OUT", 1)
    with c.db.uow() as uow:
        assert uow.variants.list_for_generation(uuid.UUID(job.generation_id)) == []
    assert _usage(c, job.user_id) == (0, 0)


def test_failure_callback_for_a_stale_claim_loses_to_the_take_over(
    container: Container,
) -> None:
    """The first delivery died after its claim; QStash's failure callback finds the claim
    stale and goes to fail it, but a redelivery takes the job over first: the callback
    (fenced on the claim it examined) must not fail, refund or release anything. The
    sweeper ends stale claims through the same fenced step."""
    c = container
    job = _queued_job(c)
    gen_id = uuid.UUID(job.generation_id)
    with c.db.uow() as uow:  # the delivery that died right after its claim and refresh
        assert uow.generations.claim(gen_id, c.now(), c.now()) == 1
        gen = uow.generations.get_any(gen_id)
        uow.commit()
    assert gen is not None
    lease = LeaseRef(job.lease_id, gen.owner_id, gen.provider, gen.model, Lane(gen.lane), 1)
    assert c.enforcer.refresh_lease(lease, gen.plan).ok
    pause = _Pause()
    # Unit of work 1 reads the generation; 2 is the fenced fail transaction.
    callback = _deps(c, now=_late(c), db=_DbWithHook(c.db, 2, pause))

    result, seen = _take_over_while_paused(
        c, job, callback, pause, old_party=worker.handle_failure_callback
    )

    assert result is False
    assert _live_state(seen) == LIVE
    _finished_once(c, job, seen)
