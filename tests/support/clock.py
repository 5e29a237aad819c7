"""Clocks for tests whose assertions depend on the period (hour, month) of "now".

Admissions, ``/v1/usage`` and the Postgres seeds all name their period from the container's
clock; a test that reads counts while the wall clock crosses an hour would compare two
hours. ``PinnableClock`` is the e2e session container's clock: system time, except while
a test has pinned it (``pinned_clock`` fixture), when every reader sees one instant.
"""

from __future__ import annotations

from datetime import datetime

from shared.clock import utcnow

__all__ = ["FakeClock", "FixedClock", "PinnableClock"]


class FakeClock:
    """An epoch-seconds clock (``() -> float``, as the authenticator and the JWKS cache
    take one) that stands still: the test moves it by setting ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FixedClock:
    """``now()`` is always ``at`` (default: the moment it was built)."""

    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or utcnow()

    def now(self) -> datetime:
        return self.at


class PinnableClock:
    """System time, or one instant between ``pin()`` and ``unpin()``."""

    def __init__(self) -> None:
        self.pinned: datetime | None = None

    def pin(self, at: datetime | None = None) -> datetime:
        self.pinned = at or utcnow()
        return self.pinned

    def unpin(self) -> None:
        self.pinned = None

    def now(self) -> datetime:
        return self.pinned or utcnow()
