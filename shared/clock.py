"""Time as an injected dependency, so services and tests agree on "now"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "utcnow"]


class Clock(Protocol):
    def now(self) -> datetime: ...


def utcnow() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(UTC)


class SystemClock:
    def now(self) -> datetime:
        return utcnow()
