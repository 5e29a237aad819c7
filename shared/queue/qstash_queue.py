"""Production queue: publish jobs to QStash, which delivers them (signed) to the worker."""

from __future__ import annotations

import json
import logging

import httpx
from qstash import QStash
from qstash.errors import QStashError
from qstash.message import PublishResponse

from shared.errors import ServiceUnavailable
from shared.queue.jobs import WORKER_FAILED_PATH, WORKER_GENERATE_PATH, JobPayload

__all__ = ["QStashQueue"]

logger = logging.getLogger("reel.queue")

# How long QStash waits for the worker's answer before counting the attempt as failed.
# A job may run MAX_JOB_RUNTIME_S (240 s by default) plus its DB work; the factory passes
# the configured value, this is only the fallback.
DEFAULT_DELIVERY_TIMEOUT_S = 300


class QStashQueue:
    """``QueuePort`` over the QStash SDK; SDK and network errors become ``ServiceUnavailable``."""

    def __init__(
        self,
        client: QStash,
        *,
        worker_url: str,
        retries: int,
        timeout_s: int = DEFAULT_DELIVERY_TIMEOUT_S,
    ) -> None:
        if not worker_url:
            raise ValueError("worker_url is required")
        self._client = client
        base = worker_url.rstrip("/")
        self._generate_url = base + WORKER_GENERATE_PATH
        self._failed_url = base + WORKER_FAILED_PATH
        self._retries = retries
        self._timeout_s = timeout_s

    def enqueue(self, job: JobPayload) -> str:
        """Publish ``job``; returns QStash's message id (the first one again if deduplicated)."""
        try:
            response = self._client.message.publish_json(
                url=self._generate_url,
                body=job.model_dump(),
                # Forwarded by QStash as a plain X-Request-Id header on every delivery.
                headers={"X-Request-Id": job.request_id},
                retries=self._retries,
                failure_callback=self._failed_url,
                # The generation id is ours and unique per job, so a publish retried by the
                # API (or the SDK) within QStash's 10-minute window is delivered once.
                deduplication_id=job.generation_id,
                timeout=self._timeout_s,
            )
        except (QStashError, httpx.HTTPError, json.JSONDecodeError, KeyError, TypeError) as exc:
            logger.warning(
                "qstash publish failed generation_id=%s error=%s",
                job.generation_id,
                type(exc).__name__,
            )
            raise ServiceUnavailable("The job queue is unavailable; retry shortly.") from exc
        if not isinstance(response, PublishResponse):
            # Only a URL-group publish answers with a list; a URL destination never should.
            raise ServiceUnavailable("The job queue gave an unexpected answer.")
        logger.info(
            "qstash published generation_id=%s message_id=%s deduplicated=%s",
            job.generation_id,
            response.message_id,
            response.deduplicated,
        )
        return response.message_id
