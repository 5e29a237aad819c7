"""Pure edges of the request contract: If-Match lists (RFC 9110), searches without a word,
job payloads that can never run, report ranges at the ends of the calendar."""

from __future__ import annotations

from datetime import date

import pytest

from shared.api.handlers.common import expected_version
from shared.api.messages import ApiRequest
from shared.db.asset_queries import unsearchable
from shared.errors import PreconditionFailed, ValidationFailed
from shared.queue import JobPayload
from shared.services.reporting import resolve_range

GID = "3f1c1a52-7d0c-4a53-9b76-2d7c1f0c9a11"


def _req(if_match: str | None) -> ApiRequest:
    headers = {} if if_match is None else {"If-Match": if_match}
    return ApiRequest("PATCH", "/x", headers, {}, b"", "rid", {}, None, "http://x/x")


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        ('"3"', {3}),
        ('"0", "3"', {0, 3}),
        (' "1" ,"2",W/"7"', {1, 2}),
        ('W/"4", "5"', {5}),
    ],
)
def test_if_match_is_a_list_of_strong_tags(header: str | None, versions: set[int] | None) -> None:
    assert expected_version(_req(header), "asset") == versions


@pytest.mark.parametrize("header", ['W/"3"', "3", '"abc"', '"', ""])
def test_if_match_without_one_of_our_tags_never_matches(header: str) -> None:
    with pytest.raises(PreconditionFailed):
        expected_version(_req(header), "asset")


@pytest.mark.parametrize(
    ("q", "nothing"),
    [(None, False), ("", False), ("   ", False), ("water", False), ("'", True),
     ("\U0001f600", True), ("- -", True), ("d'eau", False)],
)  # fmt: skip
def test_a_search_without_a_word_matches_nothing(q: str | None, nothing: bool) -> None:
    assert unsearchable(q) is nothing


@pytest.mark.parametrize(
    "overrides",
    [{"generation_id": "not-a-uuid"}, {"lease_id": GID + "\x00"}, {"user_id": "a\x00b"}],
)
def test_a_job_payload_that_can_never_run_is_refused(overrides: dict[str, str]) -> None:
    fields = {"generation_id": GID, "user_id": "u", "lease_id": GID, "request_id": "r"}
    with pytest.raises(ValidationFailed):
        JobPayload.from_body(JobPayload.model_construct(**{**fields, **overrides}).to_body())


@pytest.mark.parametrize(
    "kw",
    [{"month": "0001-01"}, {"month": "9999-12"}, {"start": "0001-01-01"}, {"end": "9999-12-31"}],
)
def test_report_ranges_stay_inside_the_calendar(kw: dict[str, str]) -> None:
    with pytest.raises(ValidationFailed):
        resolve_range(date(2026, 12, 6), **kw)  # type: ignore[arg-type]


def test_report_range_last_allowed_month() -> None:
    rng = resolve_range(date(2026, 12, 6), month="9998-12")
    assert (rng.start, rng.end) == (date(9998, 12, 1), date(9998, 12, 31))
