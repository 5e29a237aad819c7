"""Build the configured queue adapter. Nothing connects here: the SDK opens no connection
until the first publish."""

from __future__ import annotations

import httpx
from qstash import QStash

from shared.config import ConfigError, Settings
from shared.queue.base import QueuePort
from shared.queue.qstash_queue import QStashQueue

__all__ = ["DELIVERY_GRACE_S", "delivery_timeout", "queue_from_settings"]

# The publish happens inside the API request: two quick SDK retries on network errors
# (the SDK default is five, sleeping ~11 s in total) and a bounded HTTP timeout (the SDK
# default read timeout is 600 s) keep a QStash outage a fast 503, not a hung request.
PUBLISH_RETRIES = 2
PUBLISH_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
# The worker answers after the job: its runtime cap plus time for its own DB writes.
DELIVERY_GRACE_S = 60


def delivery_timeout(settings: Settings) -> int:
    """How long a delivery may take: the job's runtime cap plus the worker's own writes."""
    return settings.max_job_runtime_s + DELIVERY_GRACE_S


def _publish_backoff_ms(retry: int) -> float:
    return 100.0 * 2.0**retry


def queue_from_settings(settings: Settings) -> QueuePort:
    """``QStashQueue`` for ``QUEUE_BACKEND=qstash`` (the production default). Development's
    ``local`` backend (``devtools.local_queue.LocalQueue``, production refuses it) is
    built by ``devtools.compose``, which passes it to the container.

    Callers keep one per instance (``shared.bootstrap``).
    """
    delivery_timeout_s = delivery_timeout(settings)
    if settings.effective_queue_backend == "local" and settings.is_development:
        raise ConfigError(
            "QUEUE_BACKEND: 'local' is built by devtools.compose.dev_container (make dev)"
        )
    if not settings.qstash_token:
        raise ConfigError("QSTASH_TOKEN: required when QUEUE_BACKEND=qstash")
    if not settings.worker_url:
        raise ConfigError("WORKER_URL: required when QUEUE_BACKEND=qstash")
    client = QStash(
        settings.qstash_token,
        retry={"retries": PUBLISH_RETRIES, "backoff": _publish_backoff_ms},
        base_url=settings.qstash_url,
    )
    _bound_sdk_timeout(client)
    return QStashQueue(
        client,
        worker_url=settings.worker_url,
        retries=settings.qstash_retries,
        timeout_s=delivery_timeout_s,
    )


def _bound_sdk_timeout(client: object) -> None:
    """Lower the SDK's 600 s HTTP timeout; the SDK exposes no option for it (qstash 3.x)."""
    inner = getattr(getattr(client, "http", None), "_client", None)
    if isinstance(inner, httpx.Client):
        inner.timeout = PUBLISH_TIMEOUT
