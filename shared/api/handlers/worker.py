"""Worker routes: every request must carry a valid QStash signature (else 401)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from shared.api.messages import ApiRequest, ApiResponse
from shared.errors import BadRequest, UndeliverableJob, ValidationFailed
from shared.observability.logging import log_event

if TYPE_CHECKING:
    from shared.bootstrap import Container
    from shared.queue.signing import TokenUse
    from shared.services.upkeep import NoticeDelivery

__all__ = ["failed", "generate", "rollup", "sweep"]

_log = logging.getLogger("reel.worker")
_MAX_ATTEMPT_DIGITS: Final = 6


def _url(req: ApiRequest, c: Container) -> str:
    # Verify against our configured public URL, not the request's: proxies rewrite hosts.
    return c.settings.effective_worker_url + req.path


def _verified(req: ApiRequest, c: Container) -> None:
    c.signature_verifier.verify(req.headers.get("Upstash-Signature"), req.body, _url(req, c))


def _verified_once_later(req: ApiRequest, c: Container) -> TokenUse:
    """The job route: verified, but the token's one use is recorded by the job's first
    Redis script call (no round trip of its own), before the job writes anything."""
    signature = req.headers.get("Upstash-Signature")
    return c.signature_verifier.verify_deferred(signature, req.body, _url(req, c))


# The service and the payload models are imported after the signature check, in each
# handler: an unsigned request is refused without importing the worker's dependencies
# (AI client, enforcement, repositories, pydantic models); cold starts pay for every import.


def _attempt(req: ApiRequest) -> int:
    """QStash's retry count, for the logs: a small ASCII decimal, else 0 (``isdigit``
    alone admits "²", which ``int`` refuses, and 5000 digits, which it refuses too)."""
    raw = req.headers.get("Upstash-Retried", "0")
    ok = raw.isascii() and raw.isdigit() and len(raw) <= _MAX_ATTEMPT_DIGITS
    return int(raw) if ok else 0


def _undeliverable(exc: BadRequest | ValidationFailed, route: str) -> UndeliverableJob:
    """A signed body that can never be processed: logged, and answered so that QStash
    stops retrying it (its dead-letter queue keeps it for a human)."""
    log_event(_log, "delivery_rejected", level=logging.WARNING, route=route, code=exc.code)
    return UndeliverableJob(details=exc.details)


def generate(req: ApiRequest, c: Container) -> ApiResponse:
    token = _verified_once_later(req, c)
    from shared.queue.jobs import JobPayload
    from shared.services import worker as service

    try:
        job = JobPayload.from_body(req.body)
    except (BadRequest, ValidationFailed) as exc:
        token.record()  # a replay is a 401 whatever its body, as when checked first
        raise _undeliverable(exc, "generate") from exc
    except Exception:
        token.record()
        raise
    result = service.run_job(c.worker_deps(), job, _attempt(req), token=token)
    return ApiResponse.json(200, {"result": result.value})


def failed(req: ApiRequest, c: Container) -> ApiResponse:
    _verified(req, c)
    from shared.queue.jobs import FailureCallback
    from shared.services import worker as service

    try:
        job = FailureCallback.from_body(req.body).job()
    except (BadRequest, ValidationFailed) as exc:
        raise _undeliverable(exc, "failed") from exc
    changed = service.handle_failure_callback(c.worker_deps(), job)
    return ApiResponse.json(200, {"failed": changed})


def sweep(req: ApiRequest, c: Container) -> ApiResponse:
    _verified(req, c)
    from shared.services import upkeep

    report = upkeep.sweep(c.worker_deps(), _notice_delivery(c))
    return ApiResponse.json(
        200,
        {
            "failed": report.failed,
            "purged": {
                "drafts": report.purged.drafts,
                "assets": report.purged.assets,
                "cancel_keys": report.purged.cancel_keys,
            },
            "notices_published": report.notices_published,
        },
    )


def _notice_delivery(c: Container) -> NoticeDelivery | None:
    """The operator's webhook for usage notices, through QStash; None (nothing to publish)
    while NOTICE_WEBHOOK_URL / NOTICE_WEBHOOK_SECRET / QSTASH_TOKEN are unset."""
    s = c.settings
    if not (s.notice_webhook_url and s.notice_webhook_secret and s.qstash_token):
        return None
    from shared.services.notices import QStashNoticePublisher
    from shared.services.upkeep import NoticeDelivery

    publisher = QStashNoticePublisher(s.qstash_token, s.qstash_url, s.qstash_retries)
    return NoticeDelivery(publisher, s.notice_webhook_url, s.notice_webhook_secret)


def rollup(req: ApiRequest, c: Container) -> ApiResponse:
    """The daily usage rollup (QStash schedule); the body is ignored."""
    _verified(req, c)
    from shared.services import reporting

    result = reporting.run_rollup(c.db, c.now(), c.settings.spend_alert_micro_usd)
    return ApiResponse.json(
        200,
        {
            "from": result.start.isoformat() if result.start else None,
            "to": result.end.isoformat() if result.end else None,
            "rows": result.rows,
            "rolled_through": result.rolled_through.isoformat() if result.rolled_through else None,
            "anomalies": len(result.anomalies),
        },
    )
