"""A clock pinned to one instant: tests that compare periods never straddle an hour."""

from __future__ import annotations

from datetime import datetime

from shared.clock import utcnow

__all__ = ["FixedClock"]


class FixedClock:
    """``now()`` is always ``at`` (default: the moment it was built)."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or utcnow()

    def now(self) -> datetime:
        return self.at
