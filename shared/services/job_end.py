"""How a claimed job ends: succeeded, failed or cancelled (the worker's last step).

Each ending releases the job's slots — and a failure or cancel refunds its unit, once —
BEFORE the terminal status becomes visible (SPEC §5), writes the job's one ledger row,
and is fenced on the claim number (worker.py says why): a delivery that was taken over
ends nothing. The worker (``shared.services.worker``) claims, leases and calls the
provider; this module is what it does with the answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shared.ai import Completion, LLMPort, ProviderError, cost_micro_usd
from shared.ai import VariantContent as AiContent
from shared.db import (
    Database,
    Generation,
    GenerationStatus,
    LedgerEntry,
    NewVariant,
    VariantContent,
)
from shared.db.generations import CANCELLED
from shared.enforcement import Enforcer, StatusNote
from shared.observability.logging import log_event
from shared.services.leases import charge_of, lease_of

if TYPE_CHECKING:
    from shared.services.events import StatusBoard

__all__ = [
    "WorkerDeps",
    "elapsed_ms",
    "end_cancelled",
    "fail",
    "ledger_entry",
    "status_note",
    "succeed",
]

_log = logging.getLogger("reel.worker")


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    db: Database
    enforcer: Enforcer
    llm: LLMPort
    now: Callable[[], datetime]
    max_job_runtime_s: int
    lease_ttl_s: int
    # Status moves are published here for the event streams (None: not published).
    board: StatusBoard | None = None


def status_note(deps: WorkerDeps, gen: Generation, status: GenerationStatus) -> StatusNote | None:
    """``status`` for the event streams, to ride the script call made at the move (no
    round trip of its own; events.py says why it may precede the commit)."""
    return None if deps.board is None else deps.board.note(gen.id, status)


def elapsed_ms(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else round((later - earlier).total_seconds() * 1000, 1)


def _db_content(c: AiContent) -> VariantContent:
    return VariantContent(c.hook, c.script, c.caption, tuple(c.hashtags))


def ledger_entry(
    gen: Generation,
    prompt: int,
    completion: int,
    model: str,
    billable: bool,
    answered: Completion | ProviderError | None = None,
) -> LedgerEntry:
    """The job's one ledger row; ``answered`` names the provider and model that spent the
    tokens when it was not the generation's own (a fallback), and what others spent before."""
    provider, prior = gen.provider, 0
    if answered is not None and answered.provider:
        provider, model = answered.provider, answered.model or model
        prior = answered.prior_cost_micro_usd
    return LedgerEntry(
        generation_id=gen.id,
        owner_id=gen.owner_id,
        month=gen.period_month,
        plan=gen.plan,
        kind=gen.kind,
        provider=provider,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_micro_usd=cost_micro_usd(model, prompt, completion) + prior,
        billable=billable,
    )


def fail(
    deps: WorkerDeps,
    gen: Generation,
    code: str,
    message: str,
    *,
    attempt: int,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    answered: ProviderError | None = None,
) -> GenerationStatus | None:
    now = deps.now()
    with deps.db.uow() as uow:
        # The fenced UPDATE comes first and locks the row, so a take-over's claim waits for
        # our commit: the refund and release below can only hit the claim we examined.
        # They run last, right before the commit makes the status visible (SPEC §5).
        ended = uow.generations.end_failed(gen.id, code, message, now, attempt=attempt)
        if ended is None:
            # Lost the claim, or gone with its account while it ran: in the latter case the
            # tokens still land in the placeholder row the deletion left (pseudonymised).
            uow.ledger.settle_deleted(
                ledger_entry(gen, prompt_tokens, completion_tokens, gen.model, False, answered)
            )
            uow.commit()
            return None
        uow.ledger.record(
            ledger_entry(gen, prompt_tokens, completion_tokens, gen.model, False, answered)
        )
        deps.enforcer.finish(
            lease_of(gen, attempt), charge_of(gen), note=status_note(deps, gen, ended)
        )
        uow.commit()
    if ended is GenerationStatus.CANCELLED:
        log_event(_log, "job_cancelled", generation_id=str(gen.id), code=CANCELLED, stage=code)
    else:
        log_event(
            _log, "job_failed", level=logging.WARNING, generation_id=str(gen.id), code=code,
            enqueue_to_complete_ms=elapsed_ms(now, gen.created_at),
        )  # fmt: skip
    return ended


def end_cancelled(
    deps: WorkerDeps,
    gen: Generation,
    claim: int,
    stage: str,
    result: Completion | None = None,
) -> bool:
    """Claim ``claim`` ends the job its owner asked to cancel: refund (once) + release,
    then ``cancelled`` with a non-billable ledger row holding the tokens spent (the
    provider's answer, if it came, is dropped). False when the claim lost the job or no
    cancel was asked (then it is not ours to end here)."""
    now = deps.now()
    prompt, completion = (result.prompt_tokens, result.completion_tokens) if result else (0, 0)
    model = result.model if result else gen.model
    with deps.db.uow() as uow:
        if not uow.generations.end_cancelled(gen.id, now, attempt=claim):
            return False
        uow.ledger.record(ledger_entry(gen, prompt, completion, model, False, result))
        note = status_note(deps, gen, GenerationStatus.CANCELLED)
        deps.enforcer.finish(lease_of(gen, claim), charge_of(gen), note=note)
        uow.commit()
    log_event(_log, "job_cancelled", generation_id=str(gen.id), code=CANCELLED, stage=stage)
    return True


def succeed(
    deps: WorkerDeps, gen: Generation, result: Completion, started: datetime, attempt: int
) -> bool:
    source_id = gen.params.get("source_variant_id")
    rows = [
        NewVariant(i, _db_content(v), uuid.UUID(str(source_id)) if source_id else None)
        for i, v in enumerate(result.variants)
    ]
    now = deps.now()
    # Released first (SPEC §5: before the status is visible). The release is fenced on
    # the claim in Redis, so if a take-over holds the job by now it frees nothing of its
    # (and publishes nothing). It carries ``succeeded`` for the event streams: a hint
    # that only makes them read Postgres, so ahead of the write below is harmless; if
    # that write matches nothing, the cancel below or whoever ended the job publishes
    # the true terminal status over it.
    deps.enforcer.finish(
        lease_of(gen, attempt), note=status_note(deps, gen, GenerationStatus.SUCCEEDED)
    )
    ledger = ledger_entry(
        gen, result.prompt_tokens, result.completion_tokens, result.model, True, result
    )
    # One fenced statement writes the status, the variants and the ledger row (or, if
    # this claim lost the job or the generation is gone, nothing): its own transaction,
    # one round trip.
    with deps.db.autocommit() as uow:
        moved = uow.generations.succeed_with_variants(
            gen.id, now, attempt=attempt, draft_id=gen.draft_id, variants=rows, ledger=ledger
        )
    if not moved:
        # Lost the claim, a cancel was asked, or the generation is gone (account deleted
        # while the job ran: then its cost lands in the placeholder row the deletion left,
        # pseudonymised).
        with deps.db.autocommit() as uow:
            uow.ledger.settle_deleted(ledger)
        log_event(_log, "job_result_discarded", generation_id=str(gen.id))
        return False
    log_event(
        _log, "job_completed", generation_id=str(gen.id), variants=len(rows),
        attempts=result.attempts, provider_trace_id=result.trace_id,
        enqueue_to_start_ms=elapsed_ms(started, gen.created_at),
        start_to_complete_ms=elapsed_ms(now, started),
        enqueue_to_complete_ms=elapsed_ms(now, gen.created_at),
    )  # fmt: skip
    return True
