"""Live progress of a generation (GET /v1/generations/{id}/events, text/event-stream).

Whoever moves a generation's status — the worker (claim, success, failure, cancel), the
sweeper, the failure callback, the cancel — publishes the new status to Redis, in
``Keys.generation_status``. A stream reads Postgres once when it opens (the owner check
and the status as it is), then waits: every ``poll_s`` (250 ms) ONE Redis ``GET`` of that
key, no Postgres connection held. When the key names a later status than the one sent,
the stream reads Postgres once more (the truth: variants, error) and sends what changed.

The publishing rule. The published status is a hint that makes a stream read Postgres,
never an event itself: a stream sends only what its Postgres read finds. So a publish
may ride a Redis call made just BEFORE its move commits, and every mover's does (no
round trip of its own, ``StatusBoard.note``): the worker's lease refresh carries
``running`` (before a queued job's claim), and the ``finish`` script call that releases
the lease (and refunds a failure) carries the terminal status (SPEC §5: before the commit
makes it visible). A stream polling in that gap reads the old status, sends nothing, and
reads again at its next poll (the hint is still ahead): no event before its move, at
worst one poll later. What a publish must never do is go back — a stream whose status
equals the key's never reads again — so ``running`` is written only if nothing was
published before (``SET NX``: queued is never published, every later status is
terminal), and terminal statuses (one event id) may overwrite each other and ``running``.
A hint that never comes true (the commit fails, or the claim or the final write finds the
job moved on) costs that job's open streams one Postgres read per poll until the job
moves on (a redelivery, the sweeper), never a wrong event. The other way round cannot
happen: a move whose script call failed is not committed (the call comes first), so no
committed move goes unpublished.

Events carry their place in the lifecycle as their ``id``: 1 ``queued``, 2 ``running``, 3
the terminal one (``succeeded`` with the variants, ``failed`` with its error,
``cancelled``). A reconnect's ``Last-Event-ID`` therefore says exactly what the client
has: the stream sends only later events (a ``running`` is sent only if the job ran). A
claim handed back (running → queued, rare) is not an event: ids only move forward.

The stream ends after the terminal event; it closes itself after ``max_open_s`` (before
the function's timeout) with a ``retry`` hint, and the client reconnects with its
``Last-Event-ID``. A reconnect to a job whose terminal event the client already has is
answered ``done`` (the edge sends 204, which tells ``EventSource`` to stop).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from shared.db import Database, Generation, GenerationStatus, Variant
from shared.enforcement import StatusNote
from shared.errors import NotFound
from shared.redis.client import RedisPort
from shared.redis.keys import Keys

__all__ = [
    "POLL_S",
    "Event",
    "Heartbeat",
    "Retry",
    "StatusBoard",
    "StreamConfig",
    "StreamDeps",
    "StreamItem",
    "event_id",
    "open_stream",
]

POLL_S: Final = 0.25
"""One Redis call per 250 ms per open stream (and so an event within ~250 ms of its move)."""
STATUS_TTL_MS: Final = 3_600_000
"""The published status outlives any job (240 s cap) plus a client's reconnects; after
that a stream reads Postgres on open anyway."""
TERMINAL_ID: Final = 3


def event_id(status: GenerationStatus) -> int:
    """The event id of ``status``: its place in the lifecycle."""
    if status is GenerationStatus.QUEUED:
        return 1
    if status is GenerationStatus.RUNNING:
        return 2
    return TERMINAL_ID


class StatusBoard:
    """Where status moves are published for the streams: as notes carried by the lease
    script calls the movers make anyway (``note``), read with one ``GET`` (``read``)."""

    def __init__(self, redis: RedisPort, keys: Keys) -> None:
        self._redis, self._keys = redis, keys

    @staticmethod
    def note(generation_id: uuid.UUID | str, status: GenerationStatus) -> StatusNote:
        """``status`` to publish inside a lease script call (see the publishing rule)."""
        return StatusNote(str(generation_id), status.value, STATUS_TTL_MS)

    def read(self, generation_id: uuid.UUID) -> GenerationStatus | None:
        """The last status published, if any (one ``GET``)."""
        value = self._redis.get(self._keys.generation_status(str(generation_id)))
        try:
            return GenerationStatus(value) if value else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class StreamDeps:
    db: Database
    board: StatusBoard
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True, slots=True)
class StreamConfig:
    max_open_s: float
    """Close (with a retry hint) after this long: below the function's timeout."""
    poll_s: float = POLL_S
    heartbeat_s: float = 10.0
    """A comment line this often while nothing changes: proxies keep the connection."""
    retry_ms: int = 1000


@dataclass(frozen=True, slots=True)
class Event:
    """One status event: ``id`` (``event_id``), the status, and the generation as it was
    read (``variants`` only on ``succeeded``)."""

    id: int
    status: GenerationStatus
    generation: Generation
    variants: tuple[Variant, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A comment line (keeps the connection alive; clients ignore it)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The stream closes before the function's timeout; reconnect after ``ms``."""

    ms: int


StreamItem = Event | Heartbeat | Retry


def _snapshot(
    db: Database, user_id: str, generation_id: uuid.UUID
) -> tuple[Generation, tuple[Variant, ...]]:
    """The owner's generation (and its variants once succeeded), in one short read."""
    with db.autocommit() as uow:
        gen = uow.generations.get(user_id, generation_id)
        if gen is None:
            raise NotFound("Generation not found.")
        done = gen.status is GenerationStatus.SUCCEEDED
        variants = tuple(uow.variants.list_for_generation(gen.id)) if done else ()
    return gen, variants


def open_stream(
    deps: StreamDeps,
    user_id: str,
    generation_id: uuid.UUID,
    last_event_id: int,
    cfg: StreamConfig,
) -> Iterator[StreamItem] | None:
    """The stream of ``generation_id`` for its owner after ``last_event_id``; ``None``
    when the client already has the terminal event (nothing will ever follow).

    Reads Postgres before returning, so a missing or foreign id is a plain ``NotFound``
    (404) and not a broken stream."""
    gen, variants = _snapshot(deps.db, user_id, generation_id)
    if gen.is_terminal and last_event_id >= TERMINAL_ID:
        return None
    return _stream(deps, gen, variants, last_event_id, cfg)


def _due(gen: Generation, variants: tuple[Variant, ...], sent: int) -> list[Event]:
    """The events of ``gen``'s history as read now that come after ``sent``."""
    ran = gen.status is GenerationStatus.RUNNING or (gen.is_terminal and gen.started_at is not None)
    history = [Event(1, GenerationStatus.QUEUED, gen)]
    if ran:
        history.append(Event(2, GenerationStatus.RUNNING, gen))
    if gen.is_terminal:
        history.append(Event(TERMINAL_ID, gen.status, gen, variants))
    return [e for e in history if e.id > sent]


def _stream(
    deps: StreamDeps,
    gen: Generation,
    variants: tuple[Variant, ...],
    sent: int,
    cfg: StreamConfig,
) -> Iterator[StreamItem]:
    opened = deps.monotonic()
    beat = tick = opened
    while True:
        for event in _due(gen, variants, sent):
            yield event
            sent = event.id
        if gen.is_terminal:
            return
        now = deps.monotonic()
        if now - opened >= cfg.max_open_s:
            yield Retry(cfg.retry_ms)
            return
        if now - beat >= cfg.heartbeat_s:
            yield Heartbeat()
            beat = now
        # Polls keep a fixed cadence (not "sleep after the read"), so the gap between a
        # move and its event is at most one period plus the reads.
        tick = max(tick + cfg.poll_s, deps.monotonic())
        deps.sleep(max(0.0, tick - deps.monotonic()))
        published = deps.board.read(gen.id)
        if published is not None and event_id(published) > event_id(gen.status):
            try:
                gen, variants = _snapshot(deps.db, gen.owner_id, gen.id)
            except NotFound:
                return  # deleted meanwhile (the account): nothing more will come
