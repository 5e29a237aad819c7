"""Job queue: the payload, the ``QueuePort``, QStash and local adapters, signatures.

JobPayload / FailureCallback   what the worker receives (jobs.py)
QueuePort                      enqueue(job) -> message id; ServiceUnavailable on failure
├── QStashQueue                production: publish via the QStash SDK
└── LocalQueue                 development (devtools.local_queue): same signatures, retries
sign_qstash / SignatureVerifier  Upstash-Signature, minted and verified
RedisTokenLedger               each signed token accepted once (its jti, in Redis)
TokenUse                       a verified token's use, recorded by the worker's first script
queue_from_settings            the adapter the configuration asks for
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from shared.queue.qstash_queue import QStashQueue
    from shared.queue.signing import RedisTokenLedger, SignatureVerifier, TokenUse, sign_qstash

# Each name is imported from its module on first use (PEP 562): importing
# ``shared.queue.jobs`` (every API function does, for the payload) must not import the
# QStash SDK and httpx with the package; cold starts pay for every import.
_HOME = {
    "QueuePort": "base",
    "queue_from_settings": "factory",
    "WORKER_FAILED_PATH": "jobs",
    "WORKER_GENERATE_PATH": "jobs",
    "WORKER_ROLLUP_PATH": "jobs",
    "WORKER_SWEEP_PATH": "jobs",
    "FailureCallback": "jobs",
    "JobPayload": "jobs",
    "QStashQueue": "qstash_queue",
    "RedisTokenLedger": "signing",
    "SignatureVerifier": "signing",
    "TokenUse": "signing",
    "sign_qstash": "signing",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'shared.queue' has no attribute {name!r}")
    return getattr(importlib.import_module(f"shared.queue.{_HOME[name]}"), name)


__all__ = [
    "WORKER_FAILED_PATH",
    "WORKER_GENERATE_PATH",
    "WORKER_ROLLUP_PATH",
    "WORKER_SWEEP_PATH",
    "FailureCallback",
    "JobPayload",
    "QStashQueue",
    "QueuePort",
    "RedisTokenLedger",
    "SignatureVerifier",
    "TokenUse",
    "queue_from_settings",
    "sign_qstash",
]
