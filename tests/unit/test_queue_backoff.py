"""LocalQueue's retry timing, as pure functions."""

from __future__ import annotations

import pytest

from devtools.local_queue import parse_retry_after_s, retry_delay_s


@pytest.mark.parametrize(
    ("retried", "expected"), [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6), (4, 2.0), (30, 2.0)]
)
def test_backoff_is_exponential_and_capped(retried: int, expected: float) -> None:
    assert retry_delay_s(retried, base_s=0.2, cap_s=2.0) == pytest.approx(expected)


@pytest.mark.parametrize(("retry_after", "expected"), [(0.0, 0.0), (1.0, 1.0), (3600.0, 2.0)])
def test_retry_after_overrides_backoff_within_the_cap(retry_after: float, expected: float) -> None:
    assert retry_delay_s(5, base_s=0.2, cap_s=2.0, retry_after_s=retry_after) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 12 ", 12.0),
        ("-1", None),
        ("1.5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after_s(header) == expected
