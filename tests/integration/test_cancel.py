"""Cancelling a generation on real Postgres and Redis (``shared.services.cancel``).

Each party of a race is the real service (the worker, the failure callback, the sweeper, a
take-over, an account deletion); the fixed interleavings run the other party inside a
hook at the exact step (STYLE 24), the races run both parties on threads released
together, many trials each, and every trial ends with the same checks: the status is one
the race allows, a cancelled job has no variants, every ended job has exactly one ledger
row, no slot is held, and the usage Redis reports equals what Postgres implies
(``tests/support/usage_truth.py``, the rules written out as SQL).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from devtools.fake_minimax import FakeMiniMax, ok
from shared.ai import Completion, GenerationJob
from shared.api.handlers.generation import accepted_response, cancelled_response
from shared.api.models import CreateRequest, RegenerateRequest
from shared.billing.stripe_billing import StripeBilling
from shared.bootstrap import Container
from shared.db import SubscriptionStatus
from shared.errors import AppError, NotFound
from shared.plans import PlanName
from shared.queue import JobPayload
from shared.redis.keys import hour_label
from shared.services import account, cancel, generation, worker
from tests.support.usage_truth import postgres_usage
from tests.support.worker_env import (
    MODEL,
    CapturingQueue,
    fake_minimax_container,
)

RUNTIME_S = 30
TRIALS = 30
"""Trials per race: each is a fresh user and job, the two parties released together."""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMiniMax]:
    with FakeMiniMax(default=ok()) as f:
        yield f


@pytest.fixture(scope="module")
def container(
    database_url: str, redis_url: str, run_prefix: str, fake: FakeMiniMax
) -> Iterator[Container]:
    with fake_minimax_container(
        database_url, redis_url, f"{run_prefix}cx", fake.url, RUNTIME_S
    ) as c:
        yield c


# ---- helpers -----------------------------------------------------------------------------


def _deps(c: Container, **over: Any) -> worker.WorkerDeps:
    return dataclasses.replace(c.worker_deps(), **{"max_job_runtime_s": RUNTIME_S, **over})


def _gen_deps(c: Container) -> generation.GenerationDeps:
    return generation.GenerationDeps(
        db=c.db, enforcer=c.enforcer, queue=c.queue, now=c.now, provider="minimax", model=MODEL
    )


def _user(c: Container, plan: PlanName = PlanName.PRO) -> str:
    user_id = f"u-{secrets.token_hex(6)}"
    with c.db.uow() as uow:
        uow.users.ensure(user_id)
        uow.subscriptions.upsert(user_id, plan, SubscriptionStatus.ACTIVE)
        uow.commit()
    return user_id


def _job(c: Container, generation_id: str) -> JobPayload:
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    return queue.jobs[generation_id]


def _queued_job(c: Container, user_id: str | None = None) -> JobPayload:
    """A queued create of a new pro user (admitted: charged, both slots held)."""
    user_id = user_id or _user(c)
    body = {"brief": "water", "platform": "tiktok"}
    req = CreateRequest.model_validate(body)
    cmd = generation.CreateGeneration(
        user_id=user_id, brief=req.brief, platform=req.platform, variants=req.variants,
        title=req.title, tone=req.tone, duration_seconds=req.duration_seconds,
        language=req.language, body=body, idem_key=None,
        request_id=f"req-{secrets.token_hex(4)}",
    )  # fmt: skip
    response, _ = generation.create(_gen_deps(c), cmd, accepted_response)
    assert response.status == 202
    return _job(c, json.loads(response.body)["generation_id"])


def _cancel(
    c: Container, job: JobPayload, key: str | None = None, user_id: str | None = None
) -> tuple[int, dict[str, Any], bool]:
    """POST /v1/generations/{id}/cancel through the service: (status, body, replayed)."""
    deps = cancel.CancelDeps(db=c.db, enforcer=c.enforcer, now=c.now, board=c.status_board)
    cmd = cancel.CancelGeneration(
        user_id=user_id or job.user_id,
        generation_id=uuid.UUID(job.generation_id),
        idem_key=key,
        request_id="req-cancel",
    )
    response, replayed = cancel.cancel(deps, cmd, cancelled_response)
    return response.status, json.loads(response.body), replayed


def _published(c: Container, job: JobPayload) -> str | None:
    """The status last published for the job's event streams."""
    status = c.status_board.read(uuid.UUID(job.generation_id))
    return None if status is None else status.value


def _cancel_outcome(c: Container, job: JobPayload) -> str:
    """The cancel's answer, as a race's outcome table names it."""
    try:
        status, body, _ = _cancel(c, job)
    except cancel.GenerationFinished as exc:
        return f"409 {exc.details['status']}"
    except NotFound:
        return "404"
    assert status == 200
    return "200 cancelled" if body["status"] == "cancelled" else "200 cancel requested"


def _state(c: Container, job: JobPayload) -> tuple[str | None, int, int]:
    """(status or None when gone, variants, ledger rows)."""
    gid = uuid.UUID(job.generation_id)
    with c.db.uow() as uow:
        gen = uow.generations.get_any(gid)
        variants = len(uow.variants.list_for_generation(gid))
        ledger = 1 if uow.ledger.get(gid) else 0
    return (gen.status.value if gen else None), variants, ledger


def _usage_matches_postgres(c: Container, user_id: str) -> dict[str, int]:
    """What ``/v1/usage`` would report (the same ``Enforcer.usage``) equals what Postgres
    implies, for the month and hour of one pinned ``now``."""
    now = c.now()
    snap = c.enforcer.usage(user_id, now)
    reported = {
        "monthly": snap.generations.used,
        "hourly": snap.hourly.used,
        "full_regens": snap.full_regens.used,
        "in_use": snap.concurrency.used,
    }
    implied = postgres_usage(c.settings.database_url or "", user_id, snap.period, hour_label(now))
    assert reported == implied, f"usage {reported} != Postgres {implied}"
    return reported


def _check_ended(c: Container, job: JobPayload, allowed: set[str | None]) -> str:
    """The checks every trial ends with; returns the final status."""
    status, variants, ledger = _state(c, job)
    assert status in allowed, status
    if status is not None:
        assert ledger == 1, "every ended job has exactly one ledger row"
        assert variants == (1 if status == "succeeded" else 0)
    usage = _usage_matches_postgres(c, job.user_id)
    assert usage["in_use"] == 0, "no slot is held once the job ended"
    if status in ("cancelled", "failed"):
        assert usage["monthly"] == 0, "a cancelled or failed job is refunded"
    return status or "gone"


class _LlmWithHook:
    """The real client; ``during`` runs while the provider is "thinking"."""

    def __init__(self, real: Any, during: Callable[[], object]) -> None:
        self._real, self._during = real, during
        self.provider, self.model = real.provider, real.model

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        self._during()
        result: Completion = self._real.generate(job, deadline=deadline)
        return result


def _race(a: Callable[[], object], b: Callable[[], object]) -> tuple[object, object]:
    """Run ``a`` and ``b`` on two threads released together; their results (or errors)."""
    gate = threading.Barrier(2)

    def run(f: Callable[[], object]) -> object:
        gate.wait(5)
        try:
            return f()
        except AppError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        fa, fb = pool.submit(run, a), pool.submit(run, b)
        return fa.result(30), fb.result(30)


def _report(name: str, outcomes: Counter[tuple[str, ...]]) -> None:
    print(f"\n{name}: {sum(outcomes.values())} trials")
    for outcome, n in sorted(outcomes.items()):
        print(f"  {n:3d}  {' | '.join(outcome)}")


# ---- queued: cancelled at once -----------------------------------------------------------


def test_cancel_of_a_queued_job_gives_every_unit_back_and_the_delivery_does_nothing(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    before = _usage_matches_postgres(c, job.user_id)
    assert (before["monthly"], before["hourly"], before["in_use"]) == (1, 1, 1)

    _cancel(c, _queued_job(c))  # another job's: the script is loaded (no NOSCRIPT retry)
    trips = c.redis.round_trips
    status, body, replayed = _cancel(c, job)

    # ONE Redis call: the refund, the release and the published status ride one finish.
    assert c.redis.round_trips - trips == 1
    assert _published(c, job) == "cancelled"
    assert (status, body["status"], replayed) == (200, "cancelled", False)
    assert body["error"]["code"] == "CANCELLED"
    assert body["completed_at"] is not None
    assert body["variants"] == []
    after = _usage_matches_postgres(c, job.user_id)
    assert (after["monthly"], after["hourly"], after["in_use"]) == (0, 0, 0)
    assert worker.run_job(_deps(c), job) is worker.JobResult.ALREADY_TERMINAL
    assert _state(c, job) == ("cancelled", 0, 1)
    # Idempotent: the same answer again, nothing given back twice.
    assert _cancel(c, job)[:2] == (200, body)
    assert _usage_matches_postgres(c, job.user_id) == after


def test_cancel_with_an_idempotency_key_replays_the_first_answer(container: Container) -> None:
    c = container
    job = _queued_job(c)
    first = _cancel(c, job, key="cancel-1")
    again = _cancel(c, job, key="cancel-1")
    assert first[:2] == again[:2]
    assert (first[2], again[2]) == (False, True)
    assert _usage_matches_postgres(c, job.user_id)["monthly"] == 0


def test_cancel_of_another_users_job_is_not_found(container: Container) -> None:
    c = container
    job = _queued_job(c)
    with pytest.raises(NotFound):
        _cancel(c, job, user_id=_user(c))
    assert _state(c, job)[0] == "queued"
    assert _cancel(c, job)[1]["status"] == "cancelled"  # its owner can


def test_cancel_of_a_finished_job_is_409_with_its_status(container: Container) -> None:
    c = container
    job = _queued_job(c)
    assert worker.run_job(_deps(c), job) is worker.JobResult.SUCCEEDED
    with pytest.raises(cancel.GenerationFinished) as exc:
        _cancel(c, job)
    assert (exc.value.status, exc.value.code) == (409, "GENERATION_FINISHED")
    assert exc.value.details == {"status": "succeeded"}
    assert _usage_matches_postgres(c, job.user_id)["monthly"] == 1


def test_cancel_of_a_queued_full_regeneration_gives_the_full_regen_unit_back(
    container: Container,
) -> None:
    c = container
    first = _queued_job(c)
    assert worker.run_job(_deps(c), first) is worker.JobResult.SUCCEEDED
    with c.db.uow() as uow:
        gen = uow.generations.get_any(uuid.UUID(first.generation_id))
    assert gen is not None
    body = {"draft_id": str(gen.draft_id), "mode": "full"}
    req = RegenerateRequest.model_validate(body)
    cmd = generation.RegenerateDraft(
        user_id=first.user_id, draft_id=gen.draft_id, mode=req.mode, variant_id=None,
        fields=None, instructions=None, variants=None, body=body, idem_key=None,
        request_id="req-full",
    )  # fmt: skip
    response, _ = generation.regenerate(_gen_deps(c), cmd, accepted_response)
    regen = _job(c, json.loads(response.body)["generation_id"])
    assert _usage_matches_postgres(c, first.user_id)["full_regens"] == 1

    assert _cancel(c, regen)[1]["status"] == "cancelled"

    usage = _usage_matches_postgres(c, first.user_id)
    assert (usage["monthly"], usage["hourly"], usage["full_regens"]) == (1, 1, 0)


# ---- running: cancelled at the worker's fence points ---------------------------------------


def test_cancel_while_the_provider_runs_drops_the_answer_and_records_its_tokens(
    container: Container,
) -> None:
    """The rule: a cancel that lands after the provider was called is still refunded
    (monthly unit back, hourly kept: it ran); the tokens are in a non-billable ledger row."""
    c = container
    job = _queued_job(c)
    asked: list[tuple[int, dict[str, Any], bool]] = []
    deps = _deps(c, llm=_LlmWithHook(c.llm, lambda: asked.append(_cancel(c, job))))

    assert worker.run_job(deps, job) is worker.JobResult.CANCELLED

    # The release before the final write published "succeeded" (a hint: the write then
    # matched nothing); the cancel's finish published the true end over it.
    assert _published(c, job) == "cancelled"
    assert asked[0][1]["status"] == "running"
    assert asked[0][1]["cancel_requested_at"]
    assert _state(c, job) == ("cancelled", 0, 1)
    with c.db.uow() as uow:
        row = uow.ledger.get(uuid.UUID(job.generation_id))
    assert row is not None
    assert not row.billable
    assert row.completion_tokens > 0
    usage = _usage_matches_postgres(c, job.user_id)
    assert (usage["monthly"], usage["hourly"], usage["in_use"]) == (0, 1, 0)


def test_cancel_between_the_claim_and_the_provider_call_never_calls_it(
    container: Container, fake: FakeMiniMax
) -> None:
    c = container
    job = _queued_job(c)
    calls = fake.calls

    class _ClaimThenCancel:
        def __init__(self, real: Any) -> None:
            self._real, self._n = real, 0

        def autocommit(self) -> Any:
            self._n += 1
            if self._n == 3:  # 1 read, 2 claim, 3 the draft read: the first fence point
                _cancel(c, job)
            return self._real.autocommit()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    assert worker.run_job(_deps(c, db=_ClaimThenCancel(c.db)), job) is worker.JobResult.CANCELLED
    assert fake.calls == calls, "the provider was never called"
    assert _state(c, job) == ("cancelled", 0, 1)
    usage = _usage_matches_postgres(c, job.user_id)
    assert (usage["monthly"], usage["hourly"], usage["in_use"]) == (0, 1, 0)


def test_a_cancel_requested_job_whose_worker_died_is_ended_cancelled_by_the_sweeper(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    with c.db.autocommit() as uow:
        assert uow.generations.claim_queued(uuid.UUID(job.generation_id), c.now(), 0) == 1
    assert _cancel(c, job)[1]["status"] == "running"

    gid = uuid.UUID(job.generation_id)
    _backdate(c, gid)
    late = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))
    assert worker.sweep(late, limit=1) == 1

    assert _state(c, job) == ("cancelled", 0, 1)
    assert _published(c, job) == "cancelled"
    usage = _usage_matches_postgres(c, job.user_id)
    assert (usage["monthly"], usage["hourly"], usage["in_use"]) == (0, 1, 0)


def _backdate(c: Container, gid: uuid.UUID) -> None:
    """Make ``gid`` the sweeper's oldest candidate (``sweep(limit=1)`` takes only it)."""
    with c.db.uow() as uow:
        uow._session.run(
            "UPDATE generations SET created_at = created_at - interval '20 years', "
            "started_at = started_at - interval '20 years' WHERE id = CAST(:g AS uuid)",
            g=str(gid),
        )
        uow.commit()


# ---- races, many trials each ------------------------------------------------------------


def test_race_cancel_vs_the_worker_finishing(container: Container) -> None:
    c = container
    outcomes: Counter[tuple[str, ...]] = Counter()
    for _ in range(TRIALS):
        job = _queued_job(c)
        answer, ran = _race(lambda: _cancel_outcome(c, job), lambda: worker.run_job(_deps(c), job))
        final = _check_ended(c, job, {"cancelled", "succeeded"})
        assert (final == "succeeded") == (answer == "409 succeeded"), (answer, final)
        outcomes[(str(answer), str(ran), final)] += 1
    _report("cancel vs worker", outcomes)


def test_race_cancel_vs_the_failure_callback(container: Container) -> None:
    c = container
    outcomes: Counter[tuple[str, ...]] = Counter()
    for _ in range(TRIALS):
        job = _queued_job(c)
        answer, failed = _race(
            lambda: _cancel_outcome(c, job),
            lambda: worker.handle_failure_callback(_deps(c), job),
        )
        final = _check_ended(c, job, {"cancelled", "failed"})
        assert (final == "failed") == (answer == "409 failed") == (failed is True)
        outcomes[(str(answer), f"callback failed it: {failed}", final)] += 1
    _report("cancel vs failure callback", outcomes)


def test_race_cancel_vs_the_sweeper(container: Container) -> None:
    c = container
    outcomes: Counter[tuple[str, ...]] = Counter()
    for _ in range(TRIALS):
        job = _queued_job(c)
        _backdate(c, uuid.UUID(job.generation_id))  # stuck now, and the oldest
        answer, swept = _race(lambda: _cancel_outcome(c, job), lambda: worker.sweep(_deps(c), 1))
        final = _check_ended(c, job, {"cancelled", "failed"})
        assert (final == "failed") == (answer == "409 failed")
        outcomes[(str(answer), f"swept: {swept}", final)] += 1
    _report("cancel vs sweeper", outcomes)


def test_race_cancel_vs_a_take_over(container: Container) -> None:
    """An old delivery claimed the job and is paused inside the provider; past its max
    runtime a take-over and the cancel race; then the old delivery resumes. The job ends
    once, by the take-over's claim, and the old delivery changes nothing."""
    c = container
    outcomes: Counter[tuple[str, ...]] = Counter()
    for _ in range(TRIALS):
        job = _queued_job(c)
        reached, go = threading.Event(), threading.Event()

        def pause(reached: threading.Event = reached, go: threading.Event = go) -> None:
            reached.set()
            assert go.wait(30)

        old_deps = _deps(c, llm=_LlmWithHook(c.llm, pause))
        late = _deps(c, now=lambda: c.now() + timedelta(seconds=RUNTIME_S + 1))
        with ThreadPoolExecutor(1) as pool:
            old = pool.submit(worker.run_job, old_deps, job)
            assert reached.wait(10)
            answer, live = _race(
                lambda job=job: _cancel_outcome(c, job),
                lambda job=job, late=late: worker.run_job(late, job),
            )
            go.set()
            old_result = old.result(30)
        assert old_result is worker.JobResult.ALREADY_TERMINAL
        final = _check_ended(c, job, {"cancelled", "succeeded"})
        assert (final == "succeeded") == (answer == "409 succeeded")
        outcomes[(str(answer), f"take-over: {live}", final)] += 1
    _report("cancel vs take-over", outcomes)


def test_race_cancel_vs_account_deletion(container: Container) -> None:
    c = container
    deps = account.AccountDeps(
        db=c.db, enforcer=c.enforcer, now=c.now,
        billing=StripeBilling.from_settings(c.settings, lambda: c.db, c.clock),
    )  # fmt: skip
    outcomes: Counter[tuple[str, ...]] = Counter()
    for _ in range(TRIALS):
        job = _queued_job(c)
        answer, _ = _race(
            lambda: _cancel_outcome(c, job),
            lambda: account.delete_account(deps, job.user_id),
        )
        # Before the usage check, which seeds the (new, planless) user's counters again.
        assert _user_keys(c, job.user_id) == [], "the deleted user's Redis state is gone"
        final = _check_ended(c, job, {None})
        assert answer in ("200 cancelled", "404"), answer
        assert worker.run_job(_deps(c), job) is worker.JobResult.UNKNOWN
        outcomes[(str(answer), final)] += 1
    _report("cancel vs account deletion", outcomes)


def _user_keys(c: Container, user_id: str) -> list[str]:
    client = c.redis._client  # type: ignore[attr-defined]
    found = client.scan_iter(match=f"{c.settings.redis_key_prefix}:*{user_id}*", count=1000)
    return sorted(k.decode() if isinstance(k, bytes) else k for k in found)


def test_account_deletion_drops_the_replay_record_of_a_keyed_cancel(
    container: Container,
) -> None:
    c = container
    job = _queued_job(c)
    assert _cancel(c, job, key="cancel:del")[1]["status"] == "cancelled"
    record = c.keys.idem(job.user_id, cancel.IDEMPOTENCY_SCOPE, "cancel:del")
    raw = c.redis._client  # type: ignore[attr-defined]
    assert raw.exists(record) == 1
    deps = account.AccountDeps(
        db=c.db, enforcer=c.enforcer, now=c.now,
        billing=StripeBilling.from_settings(c.settings, lambda: c.db, c.clock),
    )  # fmt: skip

    account.delete_account(deps, job.user_id)

    assert raw.exists(record) == 0
    assert _user_keys(c, job.user_id) == []
