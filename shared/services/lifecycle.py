"""The purge half of soft delete: rows deleted more than ``RETENTION`` ago go for good.

Run by the scheduled sweep (``POST /worker/sweep``). Each call purges at most
``limit`` drafts and ``limit`` assets, oldest deletions first, so one sweep stays short
however much piled up; the next sweep continues. Cancel keys (``cancel_keys``, which let
an account deletion find a cancel's Redis replay record) last used more than
``RETENTION`` ago go too, ``limit`` at a time: their records expired after a day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.db import Database
from shared.observability.logging import log_event
from shared.redis.keys import month_label
from shared.services.library import RESTORE_WINDOW

__all__ = ["RETENTION", "PurgeReport", "purge_deleted"]

_log = logging.getLogger("reel.lifecycle")
RETENTION: Final = RESTORE_WINDOW
"""Deleted drafts and assets are kept (restorable, for assets) this long."""


@dataclass(frozen=True, slots=True)
class PurgeReport:
    drafts: int
    assets: int
    cancel_keys: int


def purge_deleted(db: Database, now: datetime, limit: int = 500) -> PurgeReport:
    """Hard-delete drafts and assets soft-deleted before ``now - RETENTION``, and forget
    cancel keys last used before then."""
    cutoff = now - RETENTION
    with db.uow() as uow:
        drafts = uow.drafts.purge_deleted(cutoff, month_label(now), limit)
        assets = uow.assets.purge_deleted(cutoff, limit)
        cancel_keys = uow.generations.purge_cancel_keys(cutoff, limit)
        uow.commit()
    log_event(_log, "purge_finished", drafts=drafts, assets=assets, cancel_keys=cancel_keys)
    return PurgeReport(drafts, assets, cancel_keys)
