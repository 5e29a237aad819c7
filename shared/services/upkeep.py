"""``POST /worker/sweep``: one pass of the scheduled upkeep, in its order.

Stuck generations are failed and refunded (``worker.sweep``), rows deleted longer ago
than the retention are purged (``lifecycle``), and usage notices waiting in the outbox
are handed to the operator's webhook queue (``notices``; skipped while no webhook is
configured).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.services import lifecycle, notices
from shared.services.lifecycle import PurgeReport
from shared.services.notices import NoticePublisher
from shared.services.worker import WorkerDeps
from shared.services.worker import sweep as fail_stuck

__all__ = ["NoticeDelivery", "SweepReport", "sweep"]


@dataclass(frozen=True, slots=True)
class NoticeDelivery:
    """Where usage notices go: the operator's webhook, signed with its secret."""

    publisher: NoticePublisher
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class SweepReport:
    failed: int
    purged: PurgeReport
    notices_published: int


def sweep(deps: WorkerDeps, delivery: NoticeDelivery | None) -> SweepReport:
    """Fail stuck generations, purge expired deletions, publish pending notices."""
    failed = fail_stuck(deps)
    purged = lifecycle.purge_deleted(deps.db, deps.now())
    published = 0
    if delivery is not None:
        result = notices.publish_pending(
            deps.db, delivery.publisher, url=delivery.url, secret=delivery.secret, now=deps.now()
        )
        published = result.published
    return SweepReport(failed, purged, published)
