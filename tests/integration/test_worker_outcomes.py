"""What the worker leaves behind for each way a job ends, on real Postgres and Redis: the
ledger row of a cancelled job, the answer to a duplicate delivery, the claim handed back
when a take-over cannot get its slots, the status published for the event streams, and
the structured log events (name, level, fields — timings from an injected clock) that
on-call reads. Driven through ``worker.run_job``/``handle_failure_callback``/``sweep``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis

from devtools.fake_minimax import FakeMiniMax, ok
from shared.ai import Completion, GenerationJob, ProviderError, cost_micro_usd
from shared.api.handlers.generation import accepted_response, cancelled_response
from shared.api.models import CreateRequest, RegenerateRequest
from shared.bootstrap import Container
from shared.db import SubscriptionStatus
from shared.db.generations import PgGenerations
from shared.enforcement import Enforcer, LeaseRef
from shared.enforcement.scripts.admission import RefusalCode
from shared.enforcement.scripts.refresh_lease import LeaseStatus
from shared.errors import ServiceUnavailable
from shared.observability.logging import context_fields
from shared.plans import PlanName
from shared.queue import JobPayload
from shared.queue.signing import RedisTokenLedger, TokenUse
from shared.services import cancel, generation, job_end, worker
from tests.support.worker_env import (
    MODEL,
    CapturingQueue,
    fake_minimax_container,
)

RUNTIME_S = 30
# The worker's clock, this long after the generation's created_at: 1234.567 ms, which
# the timings round to one decimal.
DELAY = timedelta(microseconds=1_234_567)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMiniMax]:
    with FakeMiniMax(default=ok()) as f:
        yield f


@pytest.fixture(scope="module")
def container(
    database_url: str, redis_url: str, run_prefix: str, fake: FakeMiniMax
) -> Iterator[Container]:
    with fake_minimax_container(
        database_url, redis_url, f"{run_prefix}wo", fake.url, RUNTIME_S
    ) as c:
        yield c


Events = Callable[[], list[tuple[int, dict[str, Any]]]]


class _Captured(logging.Handler):
    """Each worker record as (level, fields, the context bound when it was logged)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[int, dict[str, Any], dict[str, str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(getattr(record, "fields", {}))
        self.records.append((record.levelno, fields, context_fields()))


@pytest.fixture
def captured() -> Iterator[_Captured]:
    handler = _Captured()
    log = logging.getLogger("reel.worker")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


@pytest.fixture
def events(captured: _Captured) -> Events:
    """(level, fields) of every event the worker has logged so far in the test."""
    return lambda: [(level, fields) for level, fields, _ in captured.records]


def _fresh(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn`` called with no log context bound (the API call that made the job annotated
    the test's own context with ids the worker must bind by itself)."""
    return contextvars.Context().run(fn, *args, **kwargs)


def _context(captured: _Captured, name: str) -> dict[str, str]:
    [ctx] = [c for _, f, c in captured.records if f["event"] == name]
    return ctx


def _deps(c: Container, **over: Any) -> worker.WorkerDeps:
    return dataclasses.replace(c.worker_deps(), **{"max_job_runtime_s": RUNTIME_S, **over})


def _queued_job(c: Container, title: str | None = None, tone: str | None = None) -> JobPayload:
    """A queued create of a new pro user (admitted: charged, both slots held)."""
    user_id = f"u-{secrets.token_hex(6)}"
    with c.db.uow() as uow:
        uow.users.ensure(user_id)
        uow.subscriptions.upsert(user_id, PlanName.PRO, SubscriptionStatus.ACTIVE)
        uow.commit()
    body: dict[str, Any] = {"brief": "water", "platform": "tiktok"}
    if title is not None:
        body["title"] = title
    if tone is not None:
        body["tone"] = tone
    req = CreateRequest.model_validate(body)
    cmd = generation.CreateGeneration(
        user_id=user_id, brief=req.brief, platform=req.platform, variants=req.variants,
        title=req.title, tone=req.tone, duration_seconds=req.duration_seconds,
        language=req.language, body=body, idem_key=None,
        request_id=f"req-{secrets.token_hex(4)}",
    )  # fmt: skip
    gen_deps = generation.GenerationDeps(
        db=c.db, enforcer=c.enforcer, queue=c.queue, now=c.now, provider="minimax", model=MODEL
    )
    response, _ = generation.create(gen_deps, cmd, accepted_response)
    assert response.status == 202
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    return queue.jobs[json.loads(response.body)["generation_id"]]


def _created_at(c: Container, job: JobPayload) -> datetime:
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(job.generation_id))
    assert gen is not None
    assert gen.created_at is not None
    return gen.created_at


def _sql(c: Container, query: str, **params: Any) -> None:
    """Run ``query`` in its own committed transaction (a state no API call makes)."""
    with c.db.uow() as uow:
        uow._session.run(query, **params)
        uow.commit()


def _at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def _cancel(c: Container, job: JobPayload) -> None:
    deps = cancel.CancelDeps(db=c.db, enforcer=c.enforcer, now=c.now, board=c.status_board)
    cmd = cancel.CancelGeneration(
        user_id=job.user_id, generation_id=uuid.UUID(job.generation_id), idem_key=None,
        request_id="req-cancel",
    )  # fmt: skip
    cancel.cancel(deps, cmd, cancelled_response)


def _status(c: Container, job: JobPayload) -> str:
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(job.generation_id))
    assert gen is not None
    return gen.status.value


def _in_use(c: Container, job: JobPayload) -> int:
    return c.enforcer.usage(job.user_id, c.now()).concurrency.used


def _ledger(c: Container, job: JobPayload) -> Any:
    with c.db.uow() as uow:
        row = uow.ledger.get(uuid.UUID(job.generation_id))
    assert row is not None
    return row


def _published(c: Container, job: JobPayload) -> str | None:
    status = c.status_board.read(uuid.UUID(job.generation_id))
    return None if status is None else status.value


def _only(events: list[tuple[int, dict[str, Any]]], name: str) -> tuple[int, dict[str, Any]]:
    found = [e for e in events if e[1]["event"] == name]
    assert len(found) == 1, (name, events)
    return found[0]


class _Llm:
    """The container's provider client; ``during`` runs inside the call, ``answers``
    keeps what it returned."""

    def __init__(self, real: Any, during: Callable[[], object] = lambda: None) -> None:
        self._real, self._during = real, during
        self.answers: list[Completion] = []

    def generate(self, job: GenerationJob, *, deadline: float | None = None) -> Completion:
        result: Completion = self._real.generate(job, deadline=deadline)
        self.answers.append(result)
        self._during()
        return result


class _Refusing:
    """A provider that answers with a permanent error, after spending some tokens."""

    def generate(self, job: GenerationJob, *, deadline: float | None = None) -> Completion:
        raise ProviderError(
            "PROVIDER_AUTH", "The provider refused the key.", transient=False,
            prompt_tokens=11, completion_tokens=0,
        )  # fmt: skip


# ---- succeeded and failed: the log events on-call reads -------------------------------------


def test_a_completed_job_logs_its_start_and_its_timings(
    container: Container, events: Events, captured: _Captured
) -> None:
    c = container
    job = _queued_job(c)
    llm = _Llm(c.llm)
    deps = _deps(c, llm=llm, now=_at(_created_at(c, job) + DELAY))

    assert _fresh(worker.run_job, deps, job, attempt=3) is worker.JobResult.SUCCEEDED
    assert (_status(c, job), _published(c, job)) == ("succeeded", "succeeded")
    assert _row(c, job).completed_at == _created_at(c, job) + DELAY

    level, started = _only(events(), "job_started")
    assert level == logging.INFO
    assert started == {
        "event": "job_started", "attempt": 3, "claim": 1, "enqueue_to_start_ms": 1234.6,
    }  # fmt: skip
    level, completed = _only(events(), "job_completed")
    answer = llm.answers[0]
    assert level == logging.INFO
    assert completed == {
        "event": "job_completed", "generation_id": job.generation_id,
        "variants": len(answer.variants), "attempts": answer.attempts,
        "provider_trace_id": answer.trace_id, "enqueue_to_start_ms": 1234.6,
        "start_to_complete_ms": 0.0, "enqueue_to_complete_ms": 1234.6,
    }  # fmt: skip
    # Every line of the job carries its ids (bound once around the whole delivery).
    ids = {"generation_id": job.generation_id, "request_id": job.request_id,
           "user_id": job.user_id}  # fmt: skip
    assert _context(captured, "job_started") == ids
    assert _context(captured, "job_completed") == ids


def test_a_failed_job_logs_a_warning_with_its_code_and_keeps_its_tokens(
    container: Container, events: Events
) -> None:
    c = container
    job = _queued_job(c)
    deps = _deps(c, llm=_Refusing(), now=_at(_created_at(c, job) + DELAY))

    assert worker.run_job(deps, job) is worker.JobResult.FAILED

    level, failed = _only(events(), "job_failed")
    assert level == logging.WARNING
    assert failed == {
        "event": "job_failed", "generation_id": job.generation_id, "code": "PROVIDER_AUTH",
        "enqueue_to_complete_ms": 1234.6,
    }  # fmt: skip
    assert _row(c, job).completed_at == _created_at(c, job) + DELAY
    row = _ledger(c, job)
    assert (row.prompt_tokens, row.completion_tokens, row.billable) == (11, 0, False)
    assert (row.provider, row.model) == ("minimax", MODEL)
    assert _in_use(c, job) == 0


def _regenerate_targeted(
    c: Container,
    first: JobPayload,
    fields: list[str] | None = None,
    instructions: str | None = None,
) -> JobPayload:
    """The queued targeted regeneration of ``first``'s first variant (``fields``: all)."""
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(first.generation_id))
        assert gen is not None
        source = uow.variants.list_for_generation(gen.id)[0]
    body: dict[str, Any] = {
        "draft_id": str(gen.draft_id), "mode": "targeted", "variant_id": str(source.id),
    }  # fmt: skip
    if fields is not None:
        body["fields"] = fields
    if instructions is not None:
        body["instructions"] = instructions
    req = RegenerateRequest.model_validate(body)
    cmd = generation.RegenerateDraft(
        user_id=first.user_id, draft_id=gen.draft_id, mode=req.mode, variant_id=req.variant_id,
        fields=req.fields, instructions=req.instructions, variants=None, body=body, idem_key=None,
        request_id="req-targeted",
    )  # fmt: skip
    gen_deps = generation.GenerationDeps(
        db=c.db, enforcer=c.enforcer, queue=c.queue, now=c.now, provider="minimax", model=MODEL
    )
    response, _ = generation.regenerate(gen_deps, cmd, accepted_response)
    assert response.status == 202, response.body
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    return queue.jobs[json.loads(response.body)["generation_id"]]


def test_a_targeted_regeneration_sends_the_source_variant_to_the_provider(
    container: Container,
) -> None:
    c = container
    first = _queued_job(c)
    assert worker.run_job(_deps(c), first) is worker.JobResult.SUCCEEDED
    regen = _regenerate_targeted(c, first)
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(first.generation_id))
        assert gen is not None
        source = uow.variants.list_for_generation(gen.id)[0]
    seen: list[GenerationJob] = []

    class _Seeing(_Llm):
        def generate(self, job: GenerationJob, *, deadline: float | None = None) -> Completion:
            seen.append(job)
            return super().generate(job, deadline=deadline)

    assert worker.run_job(_deps(c, llm=_Seeing(c.llm)), regen) is worker.JobResult.SUCCEEDED
    sent = seen[0].source
    assert sent is not None
    content = source.content
    assert (sent.hook, sent.script, sent.caption, sent.hashtags) == (
        content.hook,
        content.script,
        content.caption,
        tuple(content.hashtags),
    )
    assert isinstance(sent.hashtags, tuple)
    # The new variants remember the one they were made from.
    with c.db.uow() as uow:
        made = uow.variants.list_for_generation(uuid.UUID(regen.generation_id))
    assert made
    assert {v.source_variant_id for v in made} == {source.id}
    with c.db.uow() as uow:  # and the first generation's, made from nothing, none
        assert {v.source_variant_id for v in uow.variants.list_for_generation(gen.id)} == {None}


# ---- cancelled: the ledger row and the log line -----------------------------------------------


def test_cancelled_before_the_provider_call_records_no_tokens(
    container: Container, events: Events
) -> None:
    c = container
    job = _queued_job(c)

    class _CancelAtTheDraftRead:
        def __init__(self, real: Any) -> None:
            self._real, self._n = real, 0

        def autocommit(self) -> Any:
            self._n += 1
            if self._n == 3:  # 1 read, 2 claim, 3 the draft read: the first fence point
                _cancel(c, job)
            return self._real.autocommit()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    llm = _Llm(c.llm)
    ended_at = _created_at(c, job) + DELAY
    deps = _deps(c, db=_CancelAtTheDraftRead(c.db), llm=llm, now=_at(ended_at))
    assert worker.run_job(deps, job) is worker.JobResult.CANCELLED
    assert _row(c, job).completed_at == ended_at

    assert llm.answers == []
    row = _ledger(c, job)
    assert (row.prompt_tokens, row.completion_tokens, row.billable) == (0, 0, False)
    assert (row.provider, row.model, row.cost_micro_usd) == ("minimax", MODEL, 0)
    assert (_status(c, job), _published(c, job), _in_use(c, job)) == ("cancelled", "cancelled", 0)
    level, cancelled = _only(events(), "job_cancelled")
    assert level == logging.INFO
    assert cancelled == {
        "event": "job_cancelled", "generation_id": job.generation_id, "code": "CANCELLED",
        "stage": "before_provider",
    }  # fmt: skip


def test_cancelled_while_the_provider_ran_records_the_tokens_it_spent(
    container: Container, events: Events
) -> None:
    c = container
    job = _queued_job(c)
    llm = _Llm(c.llm, during=lambda: _cancel(c, job))

    assert worker.run_job(_deps(c, llm=llm), job) is worker.JobResult.CANCELLED

    answer = llm.answers[0]
    row = _ledger(c, job)
    assert (row.prompt_tokens, row.completion_tokens) == (
        answer.prompt_tokens,
        answer.completion_tokens,
    )
    assert answer.prompt_tokens > 0
    assert answer.completion_tokens > 0
    assert (row.model, row.billable) == (answer.model, False)
    assert row.cost_micro_usd > 0
    assert (_status(c, job), _published(c, job), _in_use(c, job)) == ("cancelled", "cancelled", 0)
    assert _only(events(), "job_cancelled")[1]["stage"] == "after_provider"


# ---- a second delivery and a take-over ----------------------------------------------------------


def _claimed_elsewhere(c: Container, job: JobPayload) -> uuid.UUID:
    """The job claimed by a delivery that never published or refreshed anything."""
    gid = uuid.UUID(job.generation_id)
    with c.db.autocommit() as uow:
        assert uow.generations.claim_queued(gid, c.now(), 0) == 1
    return gid


def test_a_duplicate_delivery_is_told_to_come_back_in_30_seconds(container: Container) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)

    with pytest.raises(ServiceUnavailable) as info:
        worker.run_job(_deps(c), job)
    assert info.value.status == 503
    assert info.value.message == "The job is running elsewhere."
    assert info.value.retry_after == 30
    assert _status(c, job) == "running"


def test_a_take_over_publishes_running(container: Container) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)
    seen: list[str | None] = []
    llm = _Llm(c.llm, during=lambda: seen.append(_published(c, job)))
    late = _deps(c, llm=llm, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))

    assert worker.run_job(late, job) is worker.JobResult.SUCCEEDED
    assert seen == ["running"]


class _RefreshFails:
    """The real enforcer, except that refreshing a lease raises (Redis gone mid-request)."""

    def __init__(self, real: Enforcer) -> None:
        self._real = real

    def refresh_lease(self, lease: LeaseRef, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis went away")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_take_over_that_cannot_refresh_its_slots_hands_the_claim_back(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)
    later = lambda: c.now() + timedelta(seconds=RUNTIME_S + 1)  # noqa: E731
    broken = _deps(c, enforcer=_RefreshFails(c.enforcer), now=later)

    with pytest.raises(ConnectionError):
        worker.run_job(broken, job)
    assert _status(c, job) == "queued"  # a redelivery can take it at once
    assert worker.run_job(_deps(c), job) is worker.JobResult.SUCCEEDED


class _RefreshAnswers:
    """The real enforcer, except that refreshing a lease answers ``status``."""

    def __init__(self, real: Enforcer, status: LeaseStatus) -> None:
        self._real, self._status = real, status

    def refresh_lease(self, lease: LeaseRef, *args: Any, **kwargs: Any) -> LeaseStatus:
        return self._status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_take_over_whose_slots_are_taken_hands_the_claim_back_and_answers_503(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)
    busy = LeaseStatus("busy", code=RefusalCode.PROVIDER_BUSY, retry_after_s=7)
    later = lambda: c.now() + timedelta(seconds=RUNTIME_S + 1)  # noqa: E731

    with pytest.raises(ServiceUnavailable) as info:
        worker.run_job(_deps(c, enforcer=_RefreshAnswers(c.enforcer, busy), now=later), job)
    assert (info.value.code, info.value.retry_after) == ("PROVIDER_BUSY", 7)
    assert _status(c, job) == "queued"


def test_a_take_over_that_was_itself_taken_over_keeps_its_hands_off(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)
    later = lambda: c.now() + timedelta(seconds=RUNTIME_S + 1)  # noqa: E731
    superseded = _RefreshAnswers(c.enforcer, LeaseStatus("superseded"))

    with pytest.raises(ServiceUnavailable) as info:
        worker.run_job(_deps(c, enforcer=superseded, now=later), job)
    assert info.value.message == "The job is running elsewhere."
    assert _status(c, job) == "running"  # the newer claim's job: not handed back


# ---- ignored deliveries, the failure callback and the sweeper ---------------------------------


def test_ignored_deliveries_log_why(container: Container, events: Events) -> None:
    c = container
    job = _queued_job(c)
    unknown = job.model_copy(update={"generation_id": str(uuid.uuid4())})
    stranger = job.model_copy(update={"user_id": "someone-else"})

    assert worker.run_job(_deps(c), unknown) is worker.JobResult.UNKNOWN
    assert worker.run_job(_deps(c), stranger) is worker.JobResult.OWNER_MISMATCH
    assert worker.run_job(_deps(c), job) is worker.JobResult.SUCCEEDED
    assert worker.run_job(_deps(c), job) is worker.JobResult.ALREADY_TERMINAL

    ignored = [(level, f) for level, f in events() if f["event"] == "job_ignored"]
    assert ignored == [
        (logging.INFO, {"event": "job_ignored", "reason": "unknown_generation"}),
        (logging.WARNING, {"event": "job_ignored", "reason": "owner_mismatch"}),
        (logging.INFO, {"event": "job_ignored", "reason": "already_terminal"}),
    ]


def test_failure_callback_for_a_live_job_is_ignored_and_logged(
    container: Container, events: Events, captured: _Captured
) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)

    assert _fresh(worker.handle_failure_callback, _deps(c), job) is False
    assert _status(c, job) == "running"
    assert _only(events(), "failure_callback_ignored") == (
        logging.INFO, {"event": "failure_callback_ignored", "reason": "running"},
    )  # fmt: skip
    assert _context(captured, "failure_callback_ignored") == {
        "generation_id": job.generation_id, "request_id": job.request_id,
    }  # fmt: skip


def _backdate(c: Container, job: JobPayload, years: int) -> datetime:
    """Move the job's creation (and start, if any) ``years`` back; its new created_at."""
    with c.db.uow() as uow:
        uow._session.run(
            "UPDATE generations SET created_at = created_at - make_interval(years => :y), "
            "started_at = started_at - make_interval(years => :y) WHERE id = CAST(:g AS uuid)",
            g=job.generation_id,
            y=years,
        )
        uow.commit()
    return _created_at(c, job)


def test_the_sweeper_takes_the_oldest_first_up_to_its_limit_and_logs_it(
    container: Container, events: Events, captured: _Captured
) -> None:
    c = container
    older, newer = _queued_job(c), _queued_job(c)
    _claimed_elsewhere(c, older)
    _claimed_elsewhere(c, newer)
    _backdate(c, older, 21)  # both the oldest candidates, this one first
    _backdate(c, newer, 20)

    assert _fresh(worker.sweep, _deps(c), limit=1) == 1
    assert (_status(c, older), _status(c, newer)) == ("failed", "running")
    assert _only(events(), "sweep_finished") == (
        logging.INFO, {"event": "sweep_finished", "examined": 1, "failed": 1},
    )  # fmt: skip
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(older.generation_id))
    assert gen is not None
    assert _context(captured, "job_failed") == {
        "generation_id": older.generation_id, "request_id": gen.request_id,
    }  # fmt: skip
    assert worker.sweep(_deps(c), limit=1) == 1
    assert _status(c, newer) == "failed"


def test_the_sweeper_leaves_jobs_inside_their_time_alone(container: Container) -> None:
    # Two jobs older than anything else in the database (limit=1 takes the oldest), each
    # looked at by a sweeper whose clock stands just inside, then just past, its time:
    # a queued job gets the lease TTL from its creation, a running one the max runtime
    # from its start.
    c = container
    deps = _deps(c)
    queued = _queued_job(c)
    created = _backdate(c, queued, 40)
    ttl = timedelta(seconds=deps.lease_ttl_s)
    assert worker.sweep(_deps(c, now=_at(created + ttl - timedelta(seconds=1))), limit=1) == 0
    assert _status(c, queued) == "queued"
    assert worker.sweep(_deps(c, now=_at(created + ttl + timedelta(seconds=1))), limit=1) == 1
    assert _status(c, queued) == "failed"

    running = _queued_job(c)
    _claimed_elsewhere(c, running)
    started = _backdate(c, running, 40)  # claimed at creation (to the second)
    runtime = timedelta(seconds=RUNTIME_S)
    assert runtime < ttl
    assert worker.sweep(_deps(c, now=_at(started + runtime - timedelta(seconds=2))), limit=1) == 0
    assert _status(c, running) == "running"
    assert worker.sweep(_deps(c, now=_at(started + runtime + timedelta(seconds=2))), limit=1) == 1
    assert _status(c, running) == "failed"


def _row(c: Container, job: JobPayload) -> Any:
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(job.generation_id))
    assert gen is not None
    return gen


def test_the_failure_callback_leaves_a_job_alone_to_the_last_instant_of_its_runtime(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    _claimed_elsewhere(c, job)
    started = _row(c, job).started_at
    edge = started + timedelta(seconds=RUNTIME_S)

    assert worker.handle_failure_callback(_deps(c, now=_at(edge)), job) is False
    assert _status(c, job) == "running"
    past = _deps(c, now=_at(edge + timedelta(microseconds=1)))
    assert worker.handle_failure_callback(past, job) is True
    gen = _row(c, job)
    assert (gen.status.value, gen.error_code) == ("failed", "DELIVERY_FAILED")
    assert gen.error_message == "The job could not be delivered."


def test_the_sweeper_counts_every_job_it_failed_and_says_why(container: Container) -> None:
    c = container
    jobs = [_queued_job(c) for _ in range(2)]
    for years, job in zip((31, 30), jobs, strict=True):
        _backdate(c, job, years)  # the two oldest in the database

    assert worker.sweep(_deps(c), limit=2) == 2
    for job in jobs:
        gen = _row(c, job)
        assert (gen.status.value, gen.error_code) == ("failed", "TIMED_OUT")
        assert gen.error_message == "The job did not finish in time."
        row = _ledger(c, job)  # nothing was spent: a non-billable row of no tokens
        assert (row.prompt_tokens, row.completion_tokens, row.billable) == (0, 0, False)


def test_the_sweeper_fails_only_the_claim_it_examined(container: Container) -> None:
    # A redelivery takes the stuck job over between the sweeper's read and its write:
    # the fenced write matches nothing and the job runs on under the new claim.
    c = container
    job = _queued_job(c)
    gid = _claimed_elsewhere(c, job)
    _backdate(c, job, 32)

    def take_over() -> None:
        with c.db.autocommit() as uow:
            now = c.now()
            assert uow.generations.claim(gid, now, now) == 2

    class _TakeOverBeforeTheWrite:
        def __init__(self, real: Any) -> None:
            self._real, self._n = real, 0

        def uow(self) -> Any:
            self._n += 1
            if self._n == 2:  # 1 the sweeper's read, 2 its fenced write
                take_over()
            return self._real.uow()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    assert worker.sweep(_deps(c, db=_TakeOverBeforeTheWrite(c.db)), limit=1) == 0
    gen = _row(c, job)
    assert (gen.status.value, gen.attempts) == ("running", 2)
    # Leave nothing running behind: past the new claim's runtime the sweeper ends it.
    later = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))
    assert worker.sweep(later, limit=1) == 1
    assert _status(c, job) == "failed"


def test_a_failure_callback_that_is_not_for_a_live_job_of_its_user_does_nothing(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    unknown = job.model_copy(update={"generation_id": str(uuid.uuid4())})
    stranger = job.model_copy(update={"user_id": "someone-else"})
    late = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))

    assert worker.handle_failure_callback(late, unknown) is False
    assert worker.handle_failure_callback(late, stranger) is False
    assert _status(c, job) == "queued"
    assert worker.handle_failure_callback(late, job) is True
    assert _status(c, job) == "failed"
    assert worker.handle_failure_callback(late, job) is False


def test_fail_generation_records_the_tokens_it_is_given(container: Container) -> None:
    c = container
    job = _queued_job(c)
    gen = _row(c, job)

    assert worker.fail_generation(
        _deps(c), gen, "PROVIDER_ERROR", "It broke.", attempt=gen.attempts,
        prompt_tokens=7, completion_tokens=3,
    )  # fmt: skip
    row = _ledger(c, job)
    assert (row.prompt_tokens, row.completion_tokens, row.billable) == (7, 3, False)
    assert _in_use(c, job) == 0


def test_a_take_over_of_a_job_that_ended_meanwhile_is_acknowledged(
    container: Container, events: Events
) -> None:
    # Read as running past its runtime, ended (by the sweeper, say) before the take-over's
    # claim: the delivery is done with it (200), not told to come back (503).
    c = container
    job = _queued_job(c)
    gid = _claimed_elsewhere(c, job)

    def end_it() -> None:
        with c.db.uow() as uow:
            uow.generations.end_failed(gid, "TIMED_OUT", "The job did not finish in time.",
                                       c.now())  # fmt: skip
            uow.commit()

    class _EndBeforeTheClaim:
        def __init__(self, real: Any) -> None:
            self._real, self._n = real, 0

        def autocommit(self) -> Any:
            self._n += 1
            if self._n == 2:  # 1 the delivery's read, 2 its claim
                end_it()
            return self._real.autocommit()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    late = _deps(c, db=_EndBeforeTheClaim(c.db),
                 now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))  # fmt: skip
    assert worker.run_job(late, job) is worker.JobResult.ALREADY_TERMINAL
    assert _status(c, job) == "failed"
    assert _only(events(), "job_ignored") == (
        logging.INFO, {"event": "job_ignored", "reason": "already_terminal"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "model", "prior"),
    [("fallback-ai", "fallback-model", 1234), ("", "another-model", 0)],
)
def test_a_cancelled_answer_is_charged_to_the_provider_and_model_that_gave_it(
    container: Container, provider: str, model: str, prior: int
) -> None:
    # A fallback answers under its own name (and brings what the first provider spent);
    # an answer without a provider name is the generation's own, at the model it names.
    c = container
    job = _queued_job(c)

    class _Answers(_Llm):
        def generate(self, job: GenerationJob, *, deadline: float | None = None) -> Completion:
            real = super().generate(job, deadline=deadline)
            return dataclasses.replace(
                real, provider=provider, model=model, prior_cost_micro_usd=prior
            )

    llm = _Answers(c.llm, during=lambda: _cancel(c, job))
    assert worker.run_job(_deps(c, llm=llm), job) is worker.JobResult.CANCELLED

    answer = llm.answers[0]
    row = _ledger(c, job)
    assert (row.provider, row.model) == (provider or "minimax", model)
    assert row.cost_micro_usd == (
        cost_micro_usd(model, answer.prompt_tokens, answer.completion_tokens) + prior
    )


class _FallbackRefuses:
    """A fallback chain that ends in a permanent error: the tokens were spent by another
    provider and model, after the first one cost ``prior``; ``during`` runs first."""

    def __init__(self, during: Callable[[], object] = lambda: None) -> None:
        self._during = during

    def generate(self, job: GenerationJob, *, deadline: float | None = None) -> Completion:
        self._during()
        raise ProviderError(
            "PROVIDER_AUTH", "The fallback refused the key.", transient=False,
            prompt_tokens=20, completion_tokens=5, provider="fallback-ai",
            model="fallback-model", prior_cost_micro_usd=321,
        )  # fmt: skip


def test_a_failure_is_charged_to_the_provider_and_model_that_spent_the_tokens(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    assert worker.run_job(_deps(c, llm=_FallbackRefuses()), job) is worker.JobResult.FAILED
    row = _ledger(c, job)
    assert (row.provider, row.model, row.billable) == ("fallback-ai", "fallback-model", False)
    assert row.cost_micro_usd == cost_micro_usd("fallback-model", 20, 5) + 321


def test_a_provider_failure_after_a_cancel_ends_the_job_cancelled(
    container: Container, events: Events
) -> None:
    c = container
    job = _queued_job(c)
    llm = _FallbackRefuses(during=lambda: _cancel(c, job))

    assert worker.run_job(_deps(c, llm=llm), job) is worker.JobResult.CANCELLED
    assert (_status(c, job), _published(c, job), _in_use(c, job)) == ("cancelled", "cancelled", 0)
    assert _only(events(), "job_cancelled") == (
        logging.INFO,
        {"event": "job_cancelled", "generation_id": job.generation_id, "code": "CANCELLED",
         "stage": "PROVIDER_AUTH"},
    )  # fmt: skip
    assert [f for _, f in events() if f["event"] == "job_failed"] == []


def test_a_job_failing_after_its_account_was_deleted_leaves_its_cost_in_the_placeholder(
    container: Container,
) -> None:
    # The deletion leaves a pseudonymised zero row for the running job; the failure
    # writes what the provider spent into it (non-billable), under the model that spent it.
    from shared.billing.stripe_billing import StripeBilling
    from shared.services import account

    c = container
    job = _queued_job(c)
    deps = account.AccountDeps(
        db=c.db, enforcer=c.enforcer, now=c.now,
        billing=StripeBilling.from_settings(c.settings, lambda: c.db, c.clock),
    )  # fmt: skip
    llm = _FallbackRefuses(during=lambda: account.delete_account(deps, job.user_id))

    assert worker.run_job(_deps(c, llm=llm), job) is worker.JobResult.ALREADY_TERMINAL
    with c.db.uow() as uow:
        rows = uow._session.run(
            "SELECT model, prompt_tokens, completion_tokens, cost_micro_usd, billable "
            "FROM usage_ledger WHERE generation_id = CAST(:g AS uuid)",
            g=job.generation_id,
        )
    assert [tuple(r) for r in rows] == [
        ("fallback-model", 20, 5, cost_micro_usd("fallback-model", 20, 5) + 321, False)
    ]


def test_an_answer_for_a_deleted_account_is_discarded_and_logged(
    container: Container, events: Events
) -> None:
    from shared.billing.stripe_billing import StripeBilling
    from shared.services import account

    c = container
    job = _queued_job(c)
    deps = account.AccountDeps(
        db=c.db, enforcer=c.enforcer, now=c.now,
        billing=StripeBilling.from_settings(c.settings, lambda: c.db, c.clock),
    )  # fmt: skip
    llm = _Llm(c.llm, during=lambda: account.delete_account(deps, job.user_id))

    assert worker.run_job(_deps(c, llm=llm), job) is worker.JobResult.ALREADY_TERMINAL
    assert _only(events(), "job_result_discarded") == (
        logging.INFO, {"event": "job_result_discarded", "generation_id": job.generation_id},
    )  # fmt: skip


# ---- what a queued job's delivery writes before and during its provider call (make mutate) ----


def test_a_queued_job_is_published_running_and_fenced_while_the_provider_works(
    container: Container, redis_url: str
) -> None:
    """The first script call of a delivery publishes ``running`` and records, in the lease
    record, the job's claim number as read (0 for a job never claimed): an older delivery
    of the same job is refused from then on."""
    c = container
    job = _queued_job(c)
    seen: dict[str, object] = {}
    raw = redis.Redis.from_url(redis_url, decode_responses=True)

    def during() -> None:
        seen["published"] = _published(c, job)
        seen["fence"] = raw.hget(c.keys.lease(job.generation_id), "attempt")

    try:
        llm = _Llm(c.llm, during=during)
        assert worker.run_job(_deps(c, llm=llm), job) is worker.JobResult.SUCCEEDED
    finally:
        raw.close()
    assert seen == {"published": "running", "fence": "0"}


def test_the_job_sent_to_the_provider_carries_the_draft_and_the_fields_asked_for(
    container: Container,
) -> None:
    c = container
    first = _queued_job(c, title="Water, daily", tone="calm")
    seen: list[GenerationJob] = []

    class _Seeing(_Llm):
        def generate(self, job: GenerationJob, *, deadline: float | None = None) -> Completion:
            seen.append(job)
            return super().generate(job, deadline=deadline)

    assert worker.run_job(_deps(c, llm=_Seeing(c.llm)), first) is worker.JobResult.SUCCEEDED
    made = seen[0]
    assert (made.title, made.brief, made.tone) == ("Water, daily", "water", "calm")
    assert made.fields == ("hook", "script", "caption", "hashtags")  # all, by default
    assert (made.instructions, made.lane) == (None, "interactive")
    regen = _regenerate_targeted(c, first, ["caption", "hook"], "Shorter, please.")
    # The batch lane (a bulk job's), which the fallback honours.
    _sql(c, "UPDATE generations SET lane = 'batch' WHERE id = CAST(:g AS uuid)",
         g=regen.generation_id)  # fmt: skip
    assert worker.run_job(_deps(c, llm=_Seeing(c.llm)), regen) is worker.JobResult.SUCCEEDED
    again = seen[1]
    assert (again.fields, again.instructions, again.lane) == (
        ("caption", "hook"), "Shorter, please.", "batch",
    )  # fmt: skip


def test_a_job_whose_draft_is_gone_fails_for_good_and_gives_everything_back(
    container: Container,
) -> None:
    """Drafts with a live job cannot be deleted through the API; should one vanish anyway
    (a manual fix, an account purge mid-flight), the job fails, non-retryable, refunded."""
    c = container
    job = _queued_job(c)
    _sql(c, "UPDATE drafts SET deleted_at = now() WHERE id = "
            "(SELECT draft_id FROM generations WHERE id = CAST(:g AS uuid))",
         g=job.generation_id)  # fmt: skip
    assert worker.run_job(_deps(c), job) is worker.JobResult.FAILED
    row = _row(c, job)
    assert (row.status.value, row.error_code, row.error_message) == (
        "failed", "DRAFT_MISSING", "The draft no longer exists.",
    )  # fmt: skip
    usage = c.enforcer.usage(job.user_id, c.now())
    assert (usage.generations.used, usage.concurrency.used) == (0, 0)


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The generation ids the worker reads by ``get_any`` (each read is a round trip)."""
    reads: list[str] = []
    real = PgGenerations.get_any

    def get_any(self: PgGenerations, generation_id: uuid.UUID) -> Any:
        reads.append(str(generation_id))
        return real(self, generation_id)

    monkeypatch.setattr(PgGenerations, "get_any", get_any)
    return reads


def test_a_delivery_that_wins_its_claim_reads_the_job_once(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read after a claim is for a lost claim only (did the job end, or is it running
    elsewhere?); a won claim needs none, queued or taken over."""
    c = container
    queued, stale = _queued_job(c), _queued_job(c)
    _claimed_elsewhere(c, stale)
    reads = _counting_reads(monkeypatch)
    assert worker.run_job(_deps(c), queued) is worker.JobResult.SUCCEEDED
    late = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))
    assert worker.run_job(late, stale) is worker.JobResult.SUCCEEDED
    assert reads == [queued.generation_id, stale.generation_id]


def test_the_sweeper_takes_a_hundred_jobs_a_run(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = PgGenerations.find_stuck

    def find_stuck(self: PgGenerations, **kw: Any) -> Any:
        asked.append(kw["limit"])
        return real(self, **kw)

    monkeypatch.setattr(PgGenerations, "find_stuck", find_stuck)
    worker.sweep(_deps(container))
    assert asked == [100]


def _token(c: Container) -> TokenUse:
    return TokenUse(f"jti-{secrets.token_hex(6)}", 300, RedisTokenLedger(c.redis, c.keys))


def _recorded(c: Container, token: TokenUse) -> bool:
    return c.redis.get(c.keys.qstash_token(token.token_id)) == "1"


def test_a_delivery_ignored_for_its_owner_still_uses_up_its_token(container: Container) -> None:
    c = container
    stranger = _queued_job(c).model_copy(update={"user_id": "someone-else"})
    token = _token(c)
    assert worker.run_job(_deps(c), stranger, token=token) is worker.JobResult.OWNER_MISMATCH
    assert _recorded(c, token)


def test_a_delivery_whose_read_fails_still_uses_up_its_token(container: Container) -> None:
    """Postgres gone at the first read: a 5xx (QStash retries with a new token), and this
    token is spent, so a replay of it is a 401 as if its check had come first."""
    c = container
    job, token = _queued_job(c), _token(c)

    class _Down:
        def autocommit(self) -> Any:
            raise ConnectionError("postgres went away")

    with pytest.raises(ConnectionError):
        worker.run_job(_deps(c, db=_Down()), job, token=token)
    assert _recorded(c, token)


def test_a_first_delivery_logs_attempt_zero(container: Container, events: Events) -> None:
    c = container
    assert worker.run_job(_deps(c), _queued_job(c)) is worker.JobResult.SUCCEEDED
    _, started = _only(events(), "job_started")
    assert started["attempt"] == 0


def test_a_worker_without_a_status_board_still_runs_jobs(container: Container) -> None:
    """The event streams' board is optional (no streams, nothing published)."""
    c = container
    job = _queued_job(c)
    assert worker.run_job(_deps(c, board=None), job) is worker.JobResult.SUCCEEDED
    assert _published(c, job) is None
    assert _status(c, job) == "succeeded"


def test_a_timing_without_its_start_is_left_out() -> None:
    later = datetime(2026, 1, 1, 12, 0, 1, 234_567)
    assert job_end.elapsed_ms(later, None) is None
    assert job_end.elapsed_ms(later, later - timedelta(seconds=2)) == 2000.0
