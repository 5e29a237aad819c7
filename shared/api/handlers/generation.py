"""POST /v1/create, POST /v1/regenerate, GET /v1/generations/{id}."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from shared.ai.factory import llm_identity
from shared.api.handlers.common import idempotency_key, path_uuid, stored
from shared.api.http import ApiRequest, ApiResponse
from shared.api.models import CreateRequest, RegenerateRequest
from shared.db import GenerationStatus
from shared.enforcement import StoredResponse
from shared.errors import NotFound
from shared.services import generation as service
from shared.services.render import generation_json

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["create", "get_generation", "regenerate"]


def _deps(c: Container) -> service.GenerationDeps:
    provider, model = llm_identity(c.settings)
    return service.GenerationDeps(
        db=c.db,
        enforcer=c.enforcer,
        queue=c.queue,
        now=c.now,
        provider=provider,
        model=model,
    )


def _submit(
    req: ApiRequest,
    c: Container,
    model: type[BaseModel],
    run: Callable[..., tuple[StoredResponse, bool]],
) -> ApiResponse:
    response, replayed = run(
        _deps(c),
        user_id=req.user_id,
        req=req.parse(model),
        raw_body=req.json(),
        idem_key=idempotency_key(req),
        request_id=req.request_id,
    )
    return stored(response, replayed)


def create(req: ApiRequest, c: Container) -> ApiResponse:
    return _submit(req, c, CreateRequest, service.create)


def regenerate(req: ApiRequest, c: Container) -> ApiResponse:
    return _submit(req, c, RegenerateRequest, service.regenerate)


def get_generation(req: ApiRequest, c: Container) -> ApiResponse:
    generation_id = path_uuid(req)
    with c.db.uow() as uow:
        gen = uow.generations.get(req.user_id, generation_id)
        if gen is None:
            raise NotFound("Generation not found.")
        done = gen.status is GenerationStatus.SUCCEEDED
        variants = uow.variants.list_for_generation(gen.id) if done else []
    return ApiResponse.json(200, generation_json(gen, variants))
