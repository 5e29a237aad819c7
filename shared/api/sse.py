"""Server-sent events: how a generation's status stream is written on the wire.

Each event is ``id`` (its place in the lifecycle, see ``shared.services.events``),
``event`` (the status) and one ``data`` line of JSON; heartbeats are comment lines; the
last line of a stream that closes before the function's timeout is a ``retry`` hint.
"""

from __future__ import annotations

import json
from typing import Any

from shared.api.render import generation_json, rfc3339
from shared.db import GenerationStatus
from shared.services.events import Event, Heartbeat, Retry, StreamItem

__all__ = ["HEARTBEAT", "encode", "event_data"]

HEARTBEAT = b": keep-alive\n\n"


def event_data(event: Event) -> dict[str, Any]:
    """``queued`` and ``running``: the id, status and time; the terminal event: the whole
    generation (``variants`` on ``succeeded``, ``error`` on ``failed``/``cancelled``)."""
    gen = event.generation
    if event.status is GenerationStatus.QUEUED:
        return {"id": str(gen.id), "status": "queued", "created_at": rfc3339(gen.created_at)}
    if event.status is GenerationStatus.RUNNING:
        return {"id": str(gen.id), "status": "running", "started_at": rfc3339(gen.started_at)}
    return generation_json(gen, list(event.variants))


def encode(item: StreamItem) -> bytes:
    """One item as its ``text/event-stream`` lines."""
    if isinstance(item, Heartbeat):
        return HEARTBEAT
    if isinstance(item, Retry):
        return f"retry: {item.ms}\n: reconnect with Last-Event-ID\n\n".encode()
    data = json.dumps(event_data(item), separators=(",", ":"), ensure_ascii=False)
    return f"id: {item.id}\nevent: {item.status.value}\ndata: {data}\n\n".encode()
