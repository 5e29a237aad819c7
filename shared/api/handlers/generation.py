"""POST /v1/create, POST /v1/regenerate, GET /v1/generations/{id} and its cancel."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from shared.api.handlers.common import idempotency_key, path_uuid, stored
from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.enforcement import StoredResponse
    from shared.services import cancel as cancelling
    from shared.services import generation as service

__all__ = [
    "accepted_response",
    "cancel_generation",
    "cancelled_response",
    "create",
    "create_command",
    "generation_events",
    "get_generation",
    "regenerate",
    "regenerate_command",
]


def accepted_response(accepted: service.Accepted) -> StoredResponse:
    """The 202 for a queued generation: what the service stores for idempotent replays, so
    a replay is this answer byte for byte."""
    from shared.enforcement import StoredResponse

    gen = accepted.generation
    body = {"draft_id": str(gen.draft_id), "generation_id": str(gen.id), "status": "queued"}
    headers = {"Content-Type": "application/json", "Location": f"/v1/generations/{gen.id}"}
    if accepted.quota is not None:
        # IETF RateLimit header fields draft: limit, remaining, seconds until the reset.
        headers["RateLimit-Limit"] = str(accepted.quota.limit)
        headers["RateLimit-Remaining"] = str(accepted.quota.remaining)
        headers["RateLimit-Reset"] = str(accepted.quota.resets_in_s)
    return StoredResponse(status=202, body=json.dumps(body, separators=(",", ":")), headers=headers)


def create_command(req: ApiRequest) -> service.CreateGeneration:
    from shared.api.models import CreateRequest
    from shared.services import generation as service

    body = req.parse(CreateRequest)
    return service.CreateGeneration(
        user_id=req.user_id,
        brief=body.brief,
        platform=body.platform,
        variants=body.variants,
        title=body.title,
        tone=body.tone,
        duration_seconds=body.duration_seconds,
        language=body.language,
        body=req.json(),
        idem_key=idempotency_key(req),
        request_id=req.request_id,
    )


def regenerate_command(req: ApiRequest) -> service.RegenerateDraft:
    from shared.api.models import RegenerateRequest
    from shared.services import generation as service

    body = req.parse(RegenerateRequest)
    return service.RegenerateDraft(
        user_id=req.user_id,
        draft_id=uuid.UUID(body.draft_id),
        mode=body.mode,
        variant_id=body.variant_id,
        fields=tuple(f.value for f in body.fields) if body.fields else None,
        instructions=body.instructions,
        variants=body.variants,
        body=req.json(),
        idem_key=idempotency_key(req),
        request_id=req.request_id,
    )


def _deps(c: Container) -> service.GenerationDeps:
    from shared.ai.factory import llm_identity
    from shared.services import generation as service

    provider, model = llm_identity(c.settings)
    return service.GenerationDeps(
        db=c.db,
        enforcer=c.enforcer,
        queue=c.queue,
        now=c.now,
        provider=provider,
        model=model,
    )


def create(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import generation as service

    return stored(*service.create(_deps(c), create_command(req), accepted_response))


def regenerate(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import generation as service

    return stored(*service.regenerate(_deps(c), regenerate_command(req), accepted_response))


def get_generation(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.api.render import generation_json
    from shared.services import views

    detail = views.generation_detail(c.db, req.user_id, path_uuid(req))
    return ApiResponse.json(200, generation_json(detail.generation, detail.variants))


def cancelled_response(cancelled: cancelling.Cancelled) -> StoredResponse:
    """200 with the generation: ``cancelled`` (it was queued), or still ``running`` with
    ``cancel_requested_at`` set (its worker ends it at its next fence point)."""
    from shared.api.render import generation_json
    from shared.enforcement import StoredResponse

    body = json.dumps(generation_json(cancelled.generation, []), separators=(",", ":"))
    return StoredResponse(status=200, body=body, headers={"Content-Type": "application/json"})


def cancel_generation(req: ApiRequest, c: Container) -> ApiResponse:
    from shared.services import cancel as cancelling

    cmd = cancelling.CancelGeneration(
        user_id=req.user_id,
        generation_id=path_uuid(req),
        idem_key=idempotency_key(req),
        request_id=req.request_id,
    )
    deps = cancelling.CancelDeps(db=c.db, enforcer=c.enforcer, now=c.now, board=c.status_board)
    return stored(*cancelling.cancel(deps, cmd, cancelled_response))


def _last_event_id(req: ApiRequest) -> int:
    """The ``Last-Event-ID`` an ``EventSource`` sends on reconnect (0: none or foreign)."""
    value = (req.headers.get("Last-Event-ID") or "").strip()
    return int(value) if value.isdigit() and len(value) <= 3 else 0


def generation_events(req: ApiRequest, c: Container) -> ApiResponse:
    """``text/event-stream`` of the generation's status moves (``shared.services.events``);
    204 once the client has the terminal event (``EventSource`` then stops)."""
    from shared.api import sse
    from shared.services import events

    deps = events.StreamDeps(db=c.db, board=c.status_board)
    cfg = events.StreamConfig(max_open_s=c.settings.events_max_open_s)
    stream = events.open_stream(deps, req.user_id, path_uuid(req), _last_event_id(req), cfg)
    if stream is None:
        return ApiResponse(204)
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no"}
    return ApiResponse(200, headers=headers, stream=(sse.encode(item) for item in stream))
