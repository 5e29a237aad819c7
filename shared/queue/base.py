"""The port services enqueue through; adapters: ``QStashQueue`` and ``LocalQueue``."""

from __future__ import annotations

from typing import Protocol

from shared.queue.jobs import JobPayload

__all__ = ["QueuePort"]


class QueuePort(Protocol):
    def enqueue(self, job: JobPayload) -> str:
        """Hand ``job`` to the queue for at-least-once delivery; return its message id.

        Raises ``shared.errors.ServiceUnavailable`` when the queue cannot accept it; the
        caller then undoes its admission (DESIGN §6). Never delivers inline.
        """
        ...
