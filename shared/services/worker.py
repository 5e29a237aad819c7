"""The worker: run one job exactly once however often QStash delivers it.

Every step is idempotent (DESIGN §5): a terminal generation is acknowledged and left
alone; the claim is a conditional UPDATE (queued → running, or take-over of a running
job whose worker died, i.e. started longer than the max runtime ago); variants are
unique per (generation, index) and the ledger per generation; refund and release are
exactly-once/idempotent in Redis. Leases are released — and a failure refunded — BEFORE
the terminal status becomes visible, so a client polling ``succeeded``/``failed`` can
start its next job at once and already sees its usage corrected. The provider call
happens outside any transaction.

Fencing: a take-over makes two live deliveries of one job possible (the old one paused,
not dead). The claim returns a number (``attempts``); each terminal transaction starts
with an UPDATE guarded by it, which also locks the row until the refund/release that
follow are done and the commit lands; the lease record stores a claim number, and
refresh and release of an older claim are refused in Redis. So a delivery that was taken
over can neither finish the job nor free the slots its successor holds.

A delivery through the worker route arrives with its signature verified but its token's
one use not yet recorded (``TokenUse``): that is done before the delivery writes
anything, by the first script call of a queued job (the lease refresh, which therefore
comes before the claim: ``_lease_then_claim``) or by a ``SET NX`` of its own on every
other path. A replay is refused (401) having written nothing, as when the check came
first.

The event streams learn each move from the script call the worker makes at that point
anyway (events.py, "the publishing rule"): ``running`` rides the lease refresh, the
terminal status the ``finish`` that releases (and refunds). A delivered job costs 2 Redis
round trips, signature and both status publishes included.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from shared.ai import GenerationJob, ProviderError
from shared.ai import VariantContent as AiContent
from shared.db import Generation, GenerationStatus, VariantContent
from shared.enforcement import enforce_lease
from shared.errors import ServiceUnavailable
from shared.observability.logging import bind, log_event
from shared.queue.jobs import JobPayload
from shared.services import job_end
from shared.services.job_end import WorkerDeps
from shared.services.leases import lease_of

if TYPE_CHECKING:
    from shared.queue.signing import TokenUse

__all__ = [
    "JobResult",
    "WorkerDeps",
    "fail_generation",
    "handle_failure_callback",
    "run_job",
    "sweep",
]

_log = logging.getLogger("reel.worker")
RUNNING_ELSEWHERE_RETRY_S: Final = 30


class JobResult(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALREADY_TERMINAL = "already_terminal"
    UNKNOWN = "unknown_generation"
    OWNER_MISMATCH = "owner_mismatch"


def _build_job(deps: WorkerDeps, gen: Generation) -> tuple[GenerationJob, bool]:
    """The provider's job, and whether the owner asked to cancel (the first fence point:
    read in the same statement as the draft, so it costs no round trip)."""
    with deps.db.autocommit() as uow:  # reads only: no BEGIN/ROLLBACK round trips
        draft, cancel_requested = uow.drafts.get_for_job(gen.owner_id, gen.draft_id, gen.id)
        source_id = gen.params.get("source_variant_id")
        source = (
            uow.variants.get_for_draft(gen.draft_id, uuid.UUID(str(source_id)))
            if source_id and not cancel_requested
            else None
        )
    if draft is None:
        raise ProviderError("DRAFT_MISSING", "The draft no longer exists.")  # not transient
    fields = tuple(gen.params.get("fields") or ("hook", "script", "caption", "hashtags"))
    job = GenerationJob(
        kind=gen.kind.value,
        brief=draft.brief,
        platform=draft.platform.value,
        title=draft.title,
        tone=draft.tone,
        duration_seconds=draft.duration_seconds,
        language=draft.language,
        variants=gen.requested_variants,
        fields=fields,
        instructions=gen.params.get("instructions"),
        source=_ai_content(source.content) if source else None,
        lane=gen.lane,
    )
    return job, cancel_requested


def _ai_content(c: VariantContent) -> AiContent:
    return AiContent(c.hook, c.script, c.caption, tuple(c.hashtags))


def fail_generation(
    deps: WorkerDeps,
    gen: Generation,
    code: str,
    message: str,
    *,
    attempt: int,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> bool:
    """Fail claim ``attempt`` of ``gen``: refund (once) + release, then the failed status and
    a non-billable ledger row; False (nothing done) when it ended or a newer claim holds it.
    A job whose owner asked to cancel it ends ``cancelled`` instead (same refund).
    """
    ended = job_end.fail(
        deps, gen, code, message, attempt=attempt,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
    )  # fmt: skip
    return ended is not None


def _running_elsewhere() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The job is running elsewhere.", retry_after=RUNNING_ELSEWHERE_RETRY_S
    )


def _claim(deps: WorkerDeps, gen: Generation) -> tuple[datetime, int] | None:
    """(claim time, claim number); None when the job ended since ``gen`` was read; 503 when
    another delivery holds it inside its runtime."""
    now = deps.now()
    stale_before = now - timedelta(seconds=deps.max_job_runtime_s)
    # Each statement its own transaction (one round trip each): the conditional UPDATE
    # commits by itself, and the read after a lost claim needs no transaction either.
    with deps.db.autocommit() as uow:
        attempt = uow.generations.claim(gen.id, now, stale_before)
        current = None if attempt is not None else uow.generations.get_any(gen.id)
    if attempt is not None:
        return now, attempt
    if current is None or current.is_terminal:
        return None
    # Another delivery holds it (still inside its runtime): let QStash come back later.
    raise _running_elsewhere()


def _take_lease(deps: WorkerDeps, gen: Generation, claim: int) -> None:
    """Extend (or re-take) the slots for ``claim`` and record it in the lease record. When
    they cannot be had, hand the claim back so a redelivery can take the job at once."""
    try:
        note = job_end.status_note(deps, gen, GenerationStatus.RUNNING)  # after the claim's commit
        status = deps.enforcer.refresh_lease(lease_of(gen, claim), gen.plan, note=note)
    except BaseException:
        _unclaim(deps, gen, claim)
        raise
    if status.superseded:
        raise _running_elsewhere()  # a take-over claimed after us; our claim is void
    if not status.ok:
        _unclaim(deps, gen, claim)
        enforce_lease(status)


def _claim_then_lease(deps: WorkerDeps, gen: Generation) -> tuple[datetime, int] | None:
    """A job claimed before (running: a take-over of a claim past its runtime, or a
    duplicate of a live one). The claim comes first, so the refresh records its number and
    the delivery taken over can no longer release or refresh our slots."""
    claimed = _claim(deps, gen)
    if claimed is not None:
        _take_lease(deps, gen, claimed[1])
    return claimed


def _lease_then_claim(
    deps: WorkerDeps, gen: Generation, token: TokenUse | None
) -> tuple[datetime, int] | None:
    """A queued job (the usual delivery): ONE script call records the delivery's token and
    extends (or re-takes) the slots, then the claim; None when the job ended meanwhile.

    The lease comes before the claim because that script call is also the replay check
    (no round trip of its own) and a replay must do nothing: refused there, it has
    written nothing in Redis and claimed nothing in Postgres. Claiming first would leave
    a refused replay holding the job until it handed the claim back (a genuine delivery
    meanwhile answered 503, the claim number bumped, and the job stuck "running" until
    the max runtime if the replay died in between).

    The fence is the job's number as read (``gen.attempts``), not our claim's. A queued
    job's last claim (that number) was handed back by its own delivery, which then
    returned without touching Redis; any older claim still alive (paused, taken over) is
    below it, so the record, now at that number, refuses it as before. And the record
    never runs ahead of Postgres, whose number the sweeper and the failure callback fence
    their refund on: a delivery dying between its refresh and its claim cannot block
    them. The claim holds only while that number is still the job's: a delivery that
    claimed since our read wins, and its slots (the same members) are left alone.

    The refresh also publishes ``running``, just before the claim commits: a hint the
    streams check against Postgres (events.py), written only once the slots are held
    and never over a status published before it.
    """
    note = job_end.status_note(deps, gen, GenerationStatus.RUNNING)
    lease = lease_of(gen, gen.attempts)
    status = deps.enforcer.refresh_lease(lease, gen.plan, token=token, note=note)
    if status.replayed and token is not None:
        raise token.refused()
    if status.superseded:
        raise _running_elsewhere()  # claimed since our read, by a newer delivery
    enforce_lease(status)  # busy: 503, with nothing claimed and nothing to hand back
    now = deps.now()
    with deps.db.autocommit() as uow:
        claim = uow.generations.claim_queued(gen.id, now, gen.attempts)
        current = None if claim is not None else uow.generations.get_any(gen.id)
    if claim is not None:
        return now, claim
    if current is not None and not current.is_terminal:
        raise _running_elsewhere()  # another delivery claimed it: its slots, not ours
    # It ended since our read, and its end released the lease before the status moved:
    # give back whatever our refresh re-took after that.
    deps.enforcer.release(lease_of(gen, gen.attempts))
    return None


def _unclaim(deps: WorkerDeps, gen: Generation, claim: int) -> None:
    with deps.db.uow() as uow:
        uow.generations.unclaim(gen.id, claim)
        uow.commit()


def _record(token: TokenUse | None) -> None:
    """Record the delivery's token on its own (``SET NX``); 401 if it was used before."""
    if token is not None:
        token.record()


def _read(deps: WorkerDeps, job: JobPayload, token: TokenUse | None) -> Generation | None:
    try:
        with deps.db.autocommit() as uow:
            return uow.generations.get_any(uuid.UUID(job.generation_id))
    except BaseException:
        _record(token)  # a replay is still a 401, as when its check came first
        raise


def _ignore(token: TokenUse | None, result: JobResult) -> JobResult:
    """Answer ``result`` without touching the job, once the token's use is recorded."""
    _record(token)
    level = logging.WARNING if result is JobResult.OWNER_MISMATCH else logging.INFO
    log_event(_log, "job_ignored", level=level, reason=result.value)
    return result


def run_job(
    deps: WorkerDeps, job: JobPayload, attempt: int = 0, *, token: TokenUse | None = None
) -> JobResult:
    """Run ``job`` once. Infrastructure trouble raises (5xx → QStash redelivers).

    ``token``: the delivery's verified signature whose use is not recorded yet (the worker
    route). It is recorded before anything is written; a replay raises 401 having done
    nothing. ``None`` (direct calls): no token to record.
    """
    with bind(generation_id=job.generation_id, request_id=job.request_id, user_id=job.user_id):
        gen = _read(deps, job, token)
        if gen is None:
            return _ignore(token, JobResult.UNKNOWN)
        if gen.owner_id != job.user_id or str(gen.id) != job.lease_id:
            return _ignore(token, JobResult.OWNER_MISMATCH)
        if gen.is_terminal:
            return _ignore(token, JobResult.ALREADY_TERMINAL)
        if gen.status is GenerationStatus.QUEUED:
            claimed = _lease_then_claim(deps, gen, token)
        else:
            _record(token)  # before the claim, its first write
            claimed = _claim_then_lease(deps, gen)
        if claimed is None:
            log_event(_log, "job_ignored", reason=JobResult.ALREADY_TERMINAL.value)
            return JobResult.ALREADY_TERMINAL
        started, claim = claimed
        try:
            log_event(
                _log,
                "job_started",
                attempt=attempt,
                claim=claim,
                enqueue_to_start_ms=job_end.elapsed_ms(started, gen.created_at),
            )
            return _execute(deps, gen, started, claim)
        except BaseException:
            # Every normal exit of _execute has released already; an exception must not
            # leak the slot. Fenced: once taken over, the slots are the live delivery's.
            deps.enforcer.release(lease_of(gen, claim))
            raise


def _execute(deps: WorkerDeps, gen: Generation, started: datetime, claim: int) -> JobResult:
    """Run the claimed job. Cancel fence points: the draft read before the provider call;
    after it returns, the final write, which matches nothing once a cancel was asked."""
    moved, outcome = _outcome(deps, gen, started, claim)
    if moved:
        return outcome
    # Our claim ended while the provider ran: the sweeper or the failure callback ended
    # it (and released), or a take-over claimed it. Give back only what this claim still
    # holds (a refresh may have re-taken slots after the job ended); the fenced release
    # leaves a newer claim's slots alone.
    deps.enforcer.release(lease_of(gen, claim))
    return JobResult.ALREADY_TERMINAL


def _outcome(
    deps: WorkerDeps, gen: Generation, started: datetime, claim: int
) -> tuple[bool, JobResult]:
    """(whether this claim ended the job, how)."""
    deadline = time.monotonic() + deps.max_job_runtime_s
    try:
        job, cancel_requested = _build_job(deps, gen)
        if cancel_requested:
            return job_end.end_cancelled(deps, gen, claim, "before_provider"), JobResult.CANCELLED
        result = deps.llm.generate(job, deadline=deadline)
    except ProviderError as exc:
        ended = job_end.fail(
            deps, gen, exc.code, exc.message, attempt=claim,
            prompt_tokens=exc.prompt_tokens, completion_tokens=exc.completion_tokens,
            answered=exc,
        )  # fmt: skip
        cancelled = ended is GenerationStatus.CANCELLED
        return ended is not None, JobResult.CANCELLED if cancelled else JobResult.FAILED
    if job_end.succeed(deps, gen, result, started, claim):
        return True, JobResult.SUCCEEDED
    # The final write matched nothing: the owner asked to cancel while the provider ran
    # (ours to end, the answer dropped), or the claim was lost (nothing to do).
    return job_end.end_cancelled(deps, gen, claim, "after_provider", result), JobResult.CANCELLED


def _running_inside_runtime(deps: WorkerDeps, gen: Generation) -> bool:
    stale_before = deps.now() - timedelta(seconds=deps.max_job_runtime_s)
    return (
        gen.status is GenerationStatus.RUNNING
        and gen.started_at is not None
        and gen.started_at >= stale_before
    )


def handle_failure_callback(deps: WorkerDeps, job: JobPayload) -> bool:
    """QStash gave up delivering ``job``: fail + refund + release, unless it is terminal or
    running inside its max runtime (the delivery holding it decides; else the sweeper)."""
    with bind(generation_id=job.generation_id, request_id=job.request_id):
        with deps.db.uow() as uow:
            gen = uow.generations.get_any(uuid.UUID(job.generation_id))
        if gen is None or gen.is_terminal or gen.owner_id != job.user_id:
            return False
        if _running_inside_runtime(deps, gen):
            # QStash gave up on a duplicate delivery (it got 503 "running elsewhere"),
            # not on the job: the delivery that holds it decides, or the sweeper later.
            log_event(_log, "failure_callback_ignored", reason="running")
            return False
        return fail_generation(
            deps, gen, "DELIVERY_FAILED", "The job could not be delivered.", attempt=gen.attempts
        )


def sweep(deps: WorkerDeps, limit: int = 100) -> int:
    """Fail and refund generations stuck past their time; returns how many were failed.

    Queued ones get the whole lease TTL (queue delays and QStash retries); running ones
    the max job runtime from their start.
    """
    now = deps.now()
    with deps.db.uow() as uow:
        stuck = uow.generations.find_stuck(
            older_than=now - timedelta(seconds=deps.lease_ttl_s),
            limit=limit,
            running_before=now - timedelta(seconds=deps.max_job_runtime_s),
        )
    failed = 0
    for gen in stuck:
        with bind(generation_id=str(gen.id), request_id=gen.request_id):
            failed += fail_generation(
                deps, gen, "TIMED_OUT", "The job did not finish in time.", attempt=gen.attempts
            )
    log_event(_log, "sweep_finished", examined=len(stuck), failed=failed)
    return failed
