"""Reads for the API (cosmicpython's ``views``): one short read-only unit of work each.

The handlers never open a unit of work; what a GET shows that no other service already
answers is read here, and handed back as domain objects for the edge to render.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.db import Database, Draft, Generation, GenerationStatus, UnitOfWork, Variant
from shared.db.notices import Notice
from shared.errors import NotFound

__all__ = [
    "DraftDetail",
    "GenerationDetail",
    "draft_detail",
    "generation_detail",
    "user_notices",
    "with_generations",
]


@dataclass(frozen=True, slots=True)
class DraftDetail:
    """A draft with its generations (``GET`` / ``PATCH /v1/drafts/{id}``)."""

    draft: Draft
    generations: list[Generation]


@dataclass(frozen=True, slots=True)
class GenerationDetail:
    """A generation with its variants once it succeeded (``GET /v1/generations/{id}``)."""

    generation: Generation
    variants: list[Variant]


def with_generations(uow: UnitOfWork, draft: Draft) -> DraftDetail:
    """``draft`` and its generations, read in ``uow`` (also after a PATCH's commit)."""
    return DraftDetail(draft, uow.generations.list_for_draft(draft.id))


def draft_detail(db: Database, user_id: str, draft_id: uuid.UUID) -> DraftDetail:
    """The caller's live draft with its generations; ``NotFound`` otherwise."""
    with db.uow() as uow:
        draft = uow.drafts.get(user_id, draft_id)
        if draft is None:
            raise NotFound("Draft not found.")
        return with_generations(uow, draft)


def generation_detail(db: Database, user_id: str, generation_id: uuid.UUID) -> GenerationDetail:
    """The caller's generation, with its variants once succeeded; ``NotFound`` otherwise."""
    with db.uow() as uow:
        gen = uow.generations.get(user_id, generation_id)
        if gen is None:
            raise NotFound("Generation not found.")
        done = gen.status is GenerationStatus.SUCCEEDED
        variants = uow.variants.list_for_generation(gen.id) if done else []
    return GenerationDetail(gen, variants)


def user_notices(db: Database, user_id: str) -> list[Notice]:
    """The caller's latest usage notices, newest first."""
    with db.uow() as uow:
        return uow.notices.for_owner(user_id)
