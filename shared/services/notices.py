"""Usage notices: read and marked read by the user, published to the operator's webhook.

The admission that crosses a threshold (the monthly pool at 80% and 100%, the credits at
the low mark) says so; the create's own insert writes the notice to the ``notices``
outbox (at most one per threshold and period). The sweep (every few minutes) hands the
unpublished ones to QStash, which delivers each to ``NOTICE_WEBHOOK_URL`` and retries
until the webhook answers 2xx. Each delivery is signed as Stripe signs its webhooks:

    Reel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(NOTICE_WEBHOOK_SECRET, "<t>.<body>")>

``verify_signature`` is the receiving side (docs/quota.md shows it for operators).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from shared.db import Database
from shared.db.notices import Notice
from shared.errors import NotFound
from shared.observability.logging import log_event

__all__ = [
    "SIGNATURE_HEADER",
    "NoticePublisher",
    "PublishResult",
    "QStashNoticePublisher",
    "mark_read",
    "notice_json",
    "publish_pending",
    "sign",
    "verify_signature",
]

_log = logging.getLogger("reel.notices")

SIGNATURE_HEADER: Final = "Reel-Signature"
TOLERANCE_S: Final = 86_400
"""The signature is made once, when the notice is handed to QStash; QStash's retries
carry it unchanged, so a retried delivery may be hours old. Replays are harmless to a
receiver that keys on the notice ``id`` (each notice is delivered until acknowledged)."""


class NoticePublisher(Protocol):
    def publish(self, url: str, body: str, headers: Mapping[str, str], dedup_id: str) -> None:
        """Hand one delivery to the retrying queue; raises on failure."""
        ...


def sign(secret: str, timestamp: int, body: str) -> str:
    """The ``Reel-Signature`` header value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: str, now_s: int, tolerance_s: int = TOLERANCE_S
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def notice_json(notice: Notice) -> dict[str, object]:
    """A notice as the API and the webhook show it."""
    return {
        "id": str(notice.id),
        "type": "usage.notice",
        "user_id": notice.owner_id,
        "kind": notice.kind,
        "period": notice.period,
        "created_at": notice.created_at.isoformat().replace("+00:00", "Z"),
        "read": notice.read_at is not None,
    }


def mark_read(db: Database, user_id: str, notice_id: uuid.UUID, now: datetime) -> Notice:
    """Mark one of the caller's notices read (the first read time stays); ``NotFound``
    when it is not theirs."""
    with db.uow() as uow:
        notice = uow.notices.mark_read(user_id, notice_id, now)
        uow.commit()
    if notice is None:
        raise NotFound("Notice not found.")
    return notice


class QStashNoticePublisher:
    """``NoticePublisher`` over the QStash SDK: QStash delivers to the operator's URL,
    forwarding the signature header, and retries failed deliveries ``retries`` times."""

    def __init__(self, token: str, base_url: str | None, retries: int) -> None:
        from qstash import QStash

        self._client = QStash(token, base_url=base_url)
        self._retries = retries

    def publish(self, url: str, body: str, headers: Mapping[str, str], dedup_id: str) -> None:
        self._client.message.publish(
            url=url,
            body=body,
            content_type="application/json",
            headers=dict(headers),
            retries=self._retries,
            deduplication_id=dedup_id,
        )


@dataclass(frozen=True, slots=True)
class PublishResult:
    published: int
    failed: int


def publish_pending(
    db: Database,
    publisher: NoticePublisher,
    *,
    url: str,
    secret: str,
    now: datetime,
    limit: int = 100,
) -> PublishResult:
    """Hand every unpublished notice (up to ``limit``) to the queue, signed; a notice
    the queue refused goes back to unpublished for the next run."""
    with db.uow() as uow:
        claimed = uow.notices.claim_unpublished(now, limit=limit)
        uow.commit()
    published = failed = 0
    for notice in claimed:
        body = json.dumps(notice_json(notice), separators=(",", ":"), sort_keys=True)
        headers = {SIGNATURE_HEADER: sign(secret, int(now.timestamp()), body)}
        try:
            publisher.publish(url, body, headers, str(notice.id))
        except Exception as exc:
            log_event(_log, "notice_publish_failed", notice_id=str(notice.id), error=str(exc))
            with db.uow() as uow:
                uow.notices.unpublish(notice.id)
                uow.commit()
            failed += 1
            continue
        published += 1
        log_event(_log, "notice_published", notice_id=str(notice.id), kind=notice.kind)
    log_event(_log, "notices_publish_run", published=published, failed=failed)
    return PublishResult(published, failed)
