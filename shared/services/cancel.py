"""Cancel a generation (POST /v1/generations/{id}/cancel): at once, or at the next fence.

- ``queued``: cancelled now. In ONE transaction the row is locked (``FOR UPDATE``: a
  worker's claim, the sweeper and an account deletion wait for us), moved ``queued →
  cancelled`` while no delivery claimed it since, given its ledger row (no tokens, not
  billable), and — before the commit makes the status visible (SPEC §5) — every unit it
  took is given back and both slots released in ONE ``finish`` call: monthly, full-regen
  and hourly (it never ran), exactly once (the refund marker); the same call publishes
  ``cancelled`` for the event streams. A later delivery finds it terminal and does
  nothing.
- ``running``: only asked (``cancel_requested_at``). The worker checks at its fence
  points (its draft read before the provider call; its final write, which matches nothing
  once asked) and ends the job ``cancelled`` without storing variants; a job whose
  worker died is ended ``cancelled`` by the sweeper or the failure callback.
- ``cancelled``: the same answer again (cancelling is idempotent).
- ``succeeded`` / ``failed``: ``GenerationFinished`` (409) naming the status.

Refund rule: a cancelled generation is refunded like a failed one, whenever the cancel
lands: its monthly unit (and full-regen unit) goes back. The hourly unit goes back only
when it never ran (cancelled while queued); one that started keeps it, as a failed one
does (SPEC §2), which bounds how often a user can make us pay a provider for nothing. The
tokens a cancelled job spent (the provider had answered, or failed, before the worker saw
the cancel) are recorded in its ledger row, not billable: they are our cost, not the
user's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared.db import Database, Generation, GenerationStatus, LedgerEntry
from shared.db.generations import CANCEL_SCOPE, CANCELLED
from shared.enforcement import Enforcer, StoredResponse, enforce_idempotency
from shared.errors import Conflict, NotFound
from shared.observability.logging import log_event
from shared.services.events import StatusBoard
from shared.services.generation import fingerprint
from shared.services.leases import charge_of, lease_of

__all__ = [
    "IDEMPOTENCY_SCOPE",
    "CancelDeps",
    "CancelGeneration",
    "CancelOutcome",
    "Cancelled",
    "GenerationFinished",
    "RenderCancel",
    "cancel",
]

_log = logging.getLogger("reel.cancel")
IDEMPOTENCY_SCOPE = CANCEL_SCOPE


class GenerationFinished(Conflict):
    """409: the generation succeeded or failed before the cancel; ``details.status``."""

    default_code = "GENERATION_FINISHED"
    default_message = "The generation has already finished."


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"  # it was queued (or already cancelled): ended now
    REQUESTED = "requested"  # it is running: its worker ends it at its next fence point


@dataclass(frozen=True, slots=True)
class CancelDeps:
    db: Database
    enforcer: Enforcer
    now: Callable[[], datetime]
    board: StatusBoard | None = None  # the event streams learn of a cancel here


@dataclass(frozen=True, slots=True)
class CancelGeneration:
    user_id: str
    generation_id: uuid.UUID
    idem_key: str | None
    request_id: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The generation after the cancel, and whether it ended now or was only asked to."""

    generation: Generation
    outcome: CancelOutcome


RenderCancel = Callable[[Cancelled], StoredResponse]
"""How the edge writes the answer: stored as is for idempotent replays."""


def _cancel_queued(deps: CancelDeps, gen: Generation, now: datetime) -> Generation:
    """queued → cancelled, the refund and release in the same transaction (see module);
    the generation as it is afterwards (moved on, if a delivery claimed it first)."""
    with deps.db.uow() as uow:
        locked = uow.generations.lock_owned(gen.owner_id, gen.id)
        if locked is None:
            raise NotFound("Generation not found.")  # deleted since our read
        if locked.status is not GenerationStatus.QUEUED:
            return locked
        if not uow.generations.mark_cancelled(gen.id, now, attempts=locked.attempts):
            return locked
        uow.ledger.record(_zero_ledger(locked))
        # Fenced on the job's number: a delivery that refreshed the lease before its claim
        # (and now waits on our row lock) used the same number, so its slots go too; it
        # then finds the job cancelled and releases whatever its refresh re-took.
        # It carries ``cancelled`` for the event streams (events.py, the publishing rule).
        note = deps.board.note(gen.id, GenerationStatus.CANCELLED) if deps.board else None
        deps.enforcer.finish(
            lease_of(locked, locked.attempts), charge_of(locked), hour=locked.period_hour,
            note=note,
        )  # fmt: skip
        uow.commit()
    log_event(_log, "job_cancelled", generation_id=str(gen.id), code=CANCELLED, stage="queued")
    return _reread(deps, gen)


def _reread(deps: CancelDeps, gen: Generation) -> Generation:
    with deps.db.autocommit() as uow:
        current = uow.generations.get(gen.owner_id, gen.id)
    if current is None:
        raise NotFound("Generation not found.")
    return current


def _zero_ledger(gen: Generation) -> LedgerEntry:
    """The ledger row of a job that never reached the provider: no tokens, no cost."""
    return LedgerEntry(
        generation_id=gen.id,
        owner_id=gen.owner_id,
        month=gen.period_month,
        plan=gen.plan,
        kind=gen.kind,
        provider=gen.provider,
        model=gen.model,
        prompt_tokens=0,
        completion_tokens=0,
        cost_micro_usd=0,
        billable=False,
    )


def _request(deps: CancelDeps, gen: Generation, now: datetime) -> Generation:
    with deps.db.autocommit() as uow:
        asked = uow.generations.request_cancel(gen.id, now)
    if asked is None:
        return _reread(deps, gen)  # it ended (or was handed back) since our read
    log_event(_log, "job_cancel_requested", generation_id=str(gen.id))
    return asked


_MAX_LOOKS = 4
"""Each look follows one move (queued → running by a claim → queued when handed back …);
more means the job is bouncing between deliveries, and the client may simply retry."""


def _settle(deps: CancelDeps, cmd: CancelGeneration) -> Cancelled:
    """Cancel or ask, looking again while the status moves under us."""
    with deps.db.autocommit() as uow:
        gen = uow.generations.get(cmd.user_id, cmd.generation_id)
    if gen is None:
        raise NotFound("Generation not found.")
    for _ in range(_MAX_LOOKS):
        if gen.status is GenerationStatus.CANCELLED:
            return Cancelled(gen, CancelOutcome.CANCELLED)
        if gen.status.is_terminal:
            raise GenerationFinished(details={"status": gen.status.value})
        if gen.status is GenerationStatus.RUNNING and gen.cancel_requested_at is not None:
            return Cancelled(gen, CancelOutcome.REQUESTED)
        if gen.status is GenerationStatus.QUEUED:
            gen = _cancel_queued(deps, gen, deps.now())
        else:
            gen = _request(deps, gen, deps.now())
    raise Conflict(
        "The generation is changing state; retry the cancel.", code="GENERATION_IN_PROGRESS"
    )


def cancel(
    deps: CancelDeps, cmd: CancelGeneration, render: RenderCancel
) -> tuple[StoredResponse, bool]:
    """Cancel ``cmd.generation_id`` for its owner. Returns (rendered response, replayed).

    With an Idempotency-Key the first answer is stored and replayed byte for byte (a 409
    is not stored: it names a status that will not change, so a retry answers the same).
    """
    if cmd.idem_key is None:
        return render(_settle(deps, cmd)), False
    fp = fingerprint(IDEMPOTENCY_SCOPE, {"generation_id": str(cmd.generation_id)})
    user, key = cmd.user_id, cmd.idem_key
    replay = enforce_idempotency(
        deps.enforcer.get_or_set_idempotency(user, IDEMPOTENCY_SCOPE, key, fp)
    )
    if replay is not None:
        return replay, True
    done = False
    try:
        with deps.db.autocommit() as uow:  # before the record can be completed: see there
            uow.generations.remember_cancel_key(user, key)
        response = render(_settle(deps, cmd))
        deps.enforcer.complete_idempotent(user, IDEMPOTENCY_SCOPE, key, fp, response)
        done = True
        return response, False
    finally:
        if not done:
            deps.enforcer.drop_idempotent(user, IDEMPOTENCY_SCOPE, key, fp)
