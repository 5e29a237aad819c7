"""Create and regenerate: admission, one transaction, enqueue — and undo on any failure.

The order is SPEC §4's: the caller has authenticated and validated; here come the
idempotency check, the effective plan, the plan checks and every limit in ONE Lua call
(``Enforcer.admit``), then one DB transaction (draft + generation ``queued``), then the
enqueue. Anything that fails after admission refunds the unit, releases both leases
and drops the pending Idempotency-Key before the error reaches the client (a 5xx never
pins its key).

The service knows no HTTP: it takes a command and produces an ``Accepted`` (the queued
generation and the monthly quota after it). Yet an idempotent replay must return the
first answer byte for byte, and that record is written here, between the enqueue and
the return, while the admission is still ours to complete. So the caller passes a
``render`` callback that turns an ``Accepted`` into the stored response; the service
stores what it is given as opaque bytes and hands the same record back (a replay from
Redis is that record, a replay from Postgres is rendered by the same callback, without a
quota). Rendering once, at the edge, keeps the fresh answer and every replay identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import (
    Database,
    Generation,
    GenerationKind,
    IdempotencyConflict,
    NewDraft,
    Platform,
    UnitOfWork,
)
from shared.enforcement import (
    AdmissionRequest,
    AdmissionTicket,
    Enforcer,
    Scope,
    StoredResponse,
    enforce_idempotency,
    enforce_or_throw,
)
from shared.errors import (
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.observability.logging import annotate, log_event
from shared.plans import Lane
from shared.queue.base import QueuePort
from shared.queue.jobs import JobPayload

__all__ = [
    "Accepted",
    "CreateGeneration",
    "GenerationDeps",
    "Quota",
    "RegenerateDraft",
    "Render",
    "create",
    "fingerprint",
    "regenerate",
]

_log = logging.getLogger("reel.generation")


@dataclass(frozen=True, slots=True)
class GenerationDeps:
    db: Database
    enforcer: Enforcer
    queue: QueuePort
    now: Callable[[], datetime]
    provider: str
    model: str


def fingerprint(endpoint: str, body: Mapping[str, Any]) -> str:
    """Identity of a request body for idempotency: same JSON value → same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreateGeneration:
    """A new draft from a brief, and its first generation."""

    user_id: str
    brief: str
    platform: Platform
    variants: int
    title: str | None
    tone: str | None
    duration_seconds: int
    language: str
    body: Mapping[str, Any]  # the request's JSON value: its fingerprint is the key's identity
    idem_key: str | None
    request_id: str


@dataclass(frozen=True, slots=True)
class RegenerateDraft:
    """A new generation of an existing draft: ``targeted`` (one variant's ``fields``) or
    ``full`` (``variants`` fresh ones, the last count when None)."""

    user_id: str
    draft_id: uuid.UUID
    mode: str
    variant_id: str | None  # as sent: the targeted params keep it verbatim
    fields: tuple[str, ...] | None
    instructions: str | None
    variants: int | None
    body: Mapping[str, Any]
    idem_key: str | None
    request_id: str


@dataclass(frozen=True, slots=True)
class Quota:
    """The monthly meter after this admission; ``resets_in_s`` counts from now."""

    limit: int
    remaining: int
    resets_in_s: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """A queued generation. ``quota`` is None for a replay rebuilt from Postgres (the
    first request's quota is gone; the stored answer never carried one then either)."""

    generation: Generation
    quota: Quota | None


Render = Callable[[Accepted], StoredResponse]
"""How the edge writes an ``Accepted``: stored as is for idempotent replays."""


def _quota(ticket: AdmissionTicket, now: datetime) -> Quota:
    monthly = ticket.monthly
    reset_s = int((monthly.resets_at - now).total_seconds()) if monthly.resets_at else 0
    return Quota(limit=monthly.limit, remaining=monthly.remaining, resets_in_s=max(0, reset_s))


@contextmanager
def _undo_on_failure(deps: GenerationDeps, ticket: AdmissionTicket) -> Iterator[None]:
    """Refund + release + drop the pending key if anything below raises (then re-raise)."""
    done = False
    try:
        yield
        done = True
    finally:
        if not done:
            deps.enforcer.abort(ticket)
            log_event(_log, "admission_undone", code="ABORTED")


def _admit(
    deps: GenerationDeps,
    *,
    user_id: str,
    scope: Scope,
    generation_id: str,
    now: datetime,
    variants: int,
    draft_id: str | None,
    idem_key: str | None,
    body_fingerprint: str,
) -> AdmissionTicket | StoredResponse:
    admission = deps.enforcer.admit(
        AdmissionRequest(
            user_id=user_id,
            scope=scope,
            lease_id=generation_id,
            now=now,
            provider=deps.provider,
            model=deps.model,
            lane=Lane.INTERACTIVE,
            variants=variants,
            draft_id=draft_id,
            idem_key=idem_key,
            fingerprint=body_fingerprint if idem_key else None,
        )
    )
    return enforce_or_throw(admission)


def _enqueue_and_answer(
    deps: GenerationDeps,
    gen: Generation,
    ticket: AdmissionTicket,
    request_id: str,
    now: datetime,
    render: Render,
) -> StoredResponse:
    job = JobPayload(
        generation_id=str(gen.id), user_id=gen.owner_id, lease_id=str(gen.id), request_id=request_id
    )
    try:
        deps.queue.enqueue(job)
    except ServiceUnavailable:
        with deps.db.uow() as uow:
            uow.generations.fail_and_forget_key(gen.id, "The job could not be queued.", now)
            uow.commit()
        raise
    log_event(_log, "job_queued", generation_id=str(gen.id), kind=gen.kind.value)
    response = render(Accepted(gen, _quota(ticket, now)))
    if ticket.idempotency is not None:
        idem = ticket.idempotency
        deps.enforcer.complete_idempotent(
            idem.user_id, idem.scope, idem.key, idem.fingerprint, response
        )
    return response


def _submit(
    deps: GenerationDeps,
    *,
    user_id: str,
    scope: Scope,
    variants: int,
    params: Mapping[str, Any],
    draft_id: uuid.UUID | None,
    new_draft: NewDraft | None,
    fp: str,
    idem_key: str | None,
    request_id: str,
    render: Render,
) -> tuple[StoredResponse, bool]:
    """The shared pipeline: admit → one statement → enqueue, undone on any failure."""
    now = deps.now()
    generation_id = str(uuid.uuid4())
    outcome = _admit(
        deps,
        user_id=user_id,
        scope=scope,
        generation_id=generation_id,
        now=now,
        variants=variants,
        draft_id=str(draft_id) if draft_id else None,
        idem_key=idem_key,
        body_fingerprint=fp,
    )
    if isinstance(outcome, StoredResponse):
        return outcome, True
    ticket = outcome
    annotate(generation_id=generation_id)
    with _undo_on_failure(deps, ticket):
        try:
            target = new_draft if new_draft is not None else draft_id
            if target is None:
                raise ValueError("a generation needs a draft")
            # One statement (user, draft and generation together for a create; for a
            # regeneration the generation on its share-locked live draft, else 404 and the
            # admission is undone on the way out): its own transaction, one round trip.
            with deps.db.autocommit() as uow:
                gen = _insert_generation(
                    uow, ticket, generation_id, target, GenerationKind(scope.value),
                    variants, params, request_id, idem_key, fp, now,
                )  # fmt: skip
        except IdempotencyConflict:
            return _replay_from_db(deps, ticket, user_id, scope, idem_key, fp, render), True
        return _enqueue_and_answer(deps, gen, ticket, request_id, now, render), False


def create(
    deps: GenerationDeps, cmd: CreateGeneration, render: Render
) -> tuple[StoredResponse, bool]:
    """Admit, store draft + queued generation, enqueue. Returns (response, replayed)."""

    new_draft = NewDraft(
        id=uuid.uuid4(),
        title=cmd.title,
        brief=cmd.brief,
        platform=cmd.platform,
        tone=cmd.tone,
        duration_seconds=cmd.duration_seconds,
        language=cmd.language,
    )
    return _submit(
        deps,
        user_id=cmd.user_id,
        scope=Scope.CREATE,
        variants=cmd.variants,
        params={},
        draft_id=None,
        new_draft=new_draft,
        fp=fingerprint("create", cmd.body),
        idem_key=cmd.idem_key,
        request_id=cmd.request_id,
        render=render,
    )


def _insert_generation(
    uow: UnitOfWork,
    ticket: AdmissionTicket,
    generation_id: str,
    draft: NewDraft | uuid.UUID,
    kind: GenerationKind,
    variants: int,
    params: Mapping[str, Any],
    request_id: str,
    idem_key: str | None,
    fp: str,
    now: datetime,
) -> Generation:
    lease = ticket.lease
    fields: dict[str, Any] = {
        "id": uuid.UUID(generation_id),
        "owner_id": lease.user_id,
        "kind": kind,
        "requested_variants": variants,
        "plan": ticket.plan,
        "period_month": ticket.charge.month,
        "period_hour": now.strftime("%Y%m%d%H"),
        "provider": lease.provider,
        "model": lease.model,
        "lane": lease.lane.value,
        "request_id": request_id,
        "params": params,
        "idempotency_scope": ticket.charge.scope.endpoint if idem_key else None,
        "idempotency_key": idem_key,
        "request_fingerprint": fp if idem_key else None,
        "credit_id": ticket.credit_id,
        "notices": _notice_rows(ticket),
    }
    if isinstance(draft, NewDraft):
        return uow.generations.create_with_draft(draft=draft, **fields)
    return uow.generations.create(draft_id=draft, live_draft=True, **fields)


def _notice_rows(ticket: AdmissionTicket) -> str:
    """The usage notices this admission crossed, as the outbox rows the insert writes: a
    pool mark is once per month, the low-credit mark once per credit that crossed it."""
    rows = [
        {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "period": ticket.charge.credit_id if kind == "credits_low" else ticket.charge.month,
        }
        for kind in ticket.notices
    ]
    return json.dumps(rows)


def _replay_from_db(
    deps: GenerationDeps,
    ticket: AdmissionTicket,
    user_id: str,
    scope: Scope,
    idem_key: str | None,
    fp: str,
    render: Render,
) -> StoredResponse:
    """Our Redis record expired but Postgres holds the first request: undo ours, replay it."""
    deps.enforcer.abort(ticket)
    with deps.db.uow() as uow:
        existing = (
            uow.generations.find_by_idempotency(user_id, scope.endpoint, idem_key)
            if idem_key
            else None
        )
    if existing is None:
        raise Conflict(code="IDEMPOTENCY_IN_PROGRESS")
    if existing.request_fingerprint != fp:
        raise IdempotencyKeyReused()
    return render(Accepted(existing, None))


def _targeted_params(cmd: RegenerateDraft) -> dict[str, Any]:
    fields = list(cmd.fields) if cmd.fields else ["hook", "script", "caption", "hashtags"]
    return {"fields": fields, "instructions": cmd.instructions, "source_variant_id": cmd.variant_id}


def _keyed_answer(deps: GenerationDeps, cmd: RegenerateDraft, fp: str) -> StoredResponse | None:
    """SPEC §3 decides a keyed request first: the stored answer of ``cmd.idem_key`` (or its
    409/422) before the draft's own refusals (404, 422, 409 GENERATION_IN_PROGRESS, which
    would otherwise greet a retry of the very request that made the draft busy). None: a
    new key. Read only when one of those refusals is about to answer: on the way to
    admission the key is claimed there, atomically, and a stored answer replayed there
    too, so a keyed regenerate costs no Redis call of its own."""
    if cmd.idem_key is None:
        return None
    scope = Scope.REGEN_FULL.endpoint  # one key space for both modes
    state = deps.enforcer.peek_idempotency(cmd.user_id, scope, cmd.idem_key, fp)
    return enforce_idempotency(state)


def _busy_replay(
    deps: GenerationDeps, cmd: RegenerateDraft, fp: str, render: Render
) -> StoredResponse | None:
    """The draft is busy and Redis has no record of the key: Postgres may hold this very
    request (its record was lost while the job runs). Replay it, or 422 for another body."""
    if cmd.idem_key is None:
        return None
    with deps.db.autocommit() as uow:
        existing = uow.generations.find_by_idempotency(
            cmd.user_id, Scope.REGEN_FULL.endpoint, cmd.idem_key
        )
    if existing is None:
        return None
    if existing.request_fingerprint != fp:
        raise IdempotencyKeyReused()
    return render(Accepted(existing, None))


def _resolve_regen(
    deps: GenerationDeps, cmd: RegenerateDraft, fp: str, render: Render
) -> tuple[uuid.UUID, int, dict[str, Any]] | StoredResponse:
    """Check the draft (404), the variant (422), no job in flight (409); a keyed request's
    stored answer comes before any of them (its replay); pick the count."""
    variant_id = uuid.UUID(cmd.variant_id or "") if cmd.mode == "targeted" else None
    with deps.db.autocommit() as uow:  # one read: one round trip
        ctx = uow.drafts.regen_context(cmd.user_id, cmd.draft_id, variant_id)
    if ctx is None or ctx.variant_ok is False or ctx.busy:
        replay = _keyed_answer(deps, cmd, fp)
        if replay is not None:
            return replay
    if ctx is None:
        raise NotFound("Draft not found.")
    if ctx.variant_ok is False:
        raise ValidationFailed.field(["variant_id"], "variant does not belong to the draft")
    if ctx.busy:
        replay = _busy_replay(deps, cmd, fp, render)
        if replay is not None:
            return replay
        raise Conflict(
            "The draft already has a generation in progress.", code="GENERATION_IN_PROGRESS"
        )
    count = ctx.last_variant_count
    if cmd.mode == "targeted":
        return cmd.draft_id, 1, _targeted_params(cmd)
    return cmd.draft_id, cmd.variants or count, {"instructions": cmd.instructions}


def regenerate(
    deps: GenerationDeps, cmd: RegenerateDraft, render: Render
) -> tuple[StoredResponse, bool]:
    """Targeted or full regeneration of a draft. Returns (response, replayed)."""
    fp = fingerprint("regenerate", cmd.body)
    resolved = _resolve_regen(deps, cmd, fp, render)
    if isinstance(resolved, StoredResponse):
        return resolved, True
    draft_id, variants, params = resolved
    return _submit(
        deps,
        user_id=cmd.user_id,
        scope=Scope.REGEN_TARGETED if cmd.mode == "targeted" else Scope.REGEN_FULL,
        variants=variants,
        params=params,
        draft_id=draft_id,
        new_draft=None,
        fp=fp,
        idem_key=cmd.idem_key,
        request_id=cmd.request_id,
        render=render,
    )
