"""The worker service on real Postgres and Redis, with the other party of a race run at
the exact step where it hurts (STYLE 24): each test seeds the interleaving by running the
competitor inside a hook, then checks the job still ends exactly once with nothing held.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.ai import Completion, GenerationJob, MiniMaxClient
from shared.api.models import CreateRequest
from shared.billing.plans import PlanName
from shared.bootstrap import Container
from shared.db import SubscriptionStatus
from shared.enforcement import Enforcer, LeaseStatus
from shared.errors import ServiceUnavailable
from shared.queue import JobPayload
from shared.services import generation, worker
from tests.support.fake_minimax import FakeMiniMax, ok
from tests.support.worker_env import MINIMAX_KEY, MODEL, CapturingQueue, worker_settings

RUNTIME_S = 30


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMiniMax]:
    with FakeMiniMax(default=ok()) as f:
        yield f


@pytest.fixture(scope="module")
def container(
    database_url: str, redis_url: str, run_prefix: str, fake: FakeMiniMax
) -> Iterator[Container]:
    settings = worker_settings(
        {
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"{run_prefix}wi",
            "QUEUE_BACKEND": "local",
            "AI_PROVIDER": "offline",
        },
        MAX_JOB_RUNTIME_S=str(RUNTIME_S),
    )
    llm = MiniMaxClient(MINIMAX_KEY, base_url=fake.url, model=MODEL, max_tokens=256)
    c = Container(settings, llm=llm, queue=CapturingQueue())
    yield c
    llm.close()
    c.db.close()


def _deps(c: Container, **over: Any) -> worker.WorkerDeps:
    fields: dict[str, Any] = {
        "db": c.db,
        "enforcer": c.enforcer,
        "llm": c.llm,
        "now": c.now,
        "max_job_runtime_s": RUNTIME_S,
        "lease_ttl_s": c.settings.lease_ttl_s,
    }
    return worker.WorkerDeps(**{**fields, **over})


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
    response, _ = generation.create(
        deps,
        user_id=user_id,
        req=CreateRequest.model_validate(body),
        raw_body=body,
        idem_key=None,
        request_id=f"req-{secrets.token_hex(4)}",
    )
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


class _EnforcerWithHook:
    """The real ``Enforcer``; ``before_refresh`` runs once right before the first refresh."""

    def __init__(self, real: Enforcer, before_refresh: Any) -> None:
        self._real, self._hook = real, before_refresh

    def refresh_lease(self, *args: Any) -> LeaseStatus:
        hook, self._hook = self._hook, None
        if hook:
            hook()
        return self._real.refresh_lease(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _LlmWithHook:
    """The real client; ``during`` runs while the provider is "thinking"."""

    def __init__(self, real: Any, during: Any) -> None:
        self._real, self._during = real, during
        self.provider, self.model = real.provider, real.model

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        self._during()
        result: Completion = self._real.generate(job, deadline=deadline)
        return result


def test_delivery_that_loses_the_race_to_the_end_gives_back_its_refresh(
    container: Container,
) -> None:
    """Read 'queued', then the other delivery runs the whole job and releases the lease,
    then our refresh re-takes the (now free) slot: the claim fails on a terminal job and
    the slot must be given back, not held until the lease TTL."""
    c = container
    job = _queued_job(c)
    winner = lambda: worker.run_job(_deps(c), job)  # noqa: E731
    outcome: list[worker.JobResult] = []
    loser = _deps(c, enforcer=_EnforcerWithHook(c.enforcer, lambda: outcome.append(winner())))

    assert worker.run_job(loser, job) is worker.JobResult.ALREADY_TERMINAL

    assert outcome == [worker.JobResult.SUCCEEDED]
    assert _status(c, job) == ("succeeded", None, 1)
    assert _usage(c, job.user_id) == (1, 0)


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
