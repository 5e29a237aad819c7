"""Job queue: the payload, the ``QueuePort``, QStash and local adapters, signatures.

JobPayload / FailureCallback   what the worker receives (jobs.py)
QueuePort                      enqueue(job) -> message id; ServiceUnavailable on failure
├── QStashQueue                production: publish via the QStash SDK
└── LocalQueue                 development: same signatures, retries and failure callback
sign_qstash / SignatureVerifier  Upstash-Signature, minted and verified
RedisTokenLedger               each signed token accepted once (its jti, in Redis)
queue_from_settings            the adapter the configuration asks for
"""

from shared.queue.base import QueuePort
from shared.queue.factory import queue_from_settings
from shared.queue.jobs import (
    WORKER_FAILED_PATH,
    WORKER_GENERATE_PATH,
    WORKER_ROLLUP_PATH,
    WORKER_SWEEP_PATH,
    FailureCallback,
    JobPayload,
)
from shared.queue.local_queue import LocalQueue
from shared.queue.qstash_queue import QStashQueue
from shared.queue.signing import RedisTokenLedger, SignatureVerifier, sign_qstash

__all__ = [
    "WORKER_FAILED_PATH",
    "WORKER_GENERATE_PATH",
    "WORKER_ROLLUP_PATH",
    "WORKER_SWEEP_PATH",
    "FailureCallback",
    "JobPayload",
    "LocalQueue",
    "QStashQueue",
    "QueuePort",
    "RedisTokenLedger",
    "SignatureVerifier",
    "queue_from_settings",
    "sign_qstash",
]
