"""Library cursors: opaque, URL-safe, tamper-evident, bound to owner and filters."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.db.cursor import Keyset, decode_cursor, encode_cursor
from shared.errors import BadRequest

SECRET = "test-cursor-secret"
FILTERS = {"platform": "tiktok", "status": None, "tags": ["a", "b"], "q": "water"}


def _encode(position: Keyset, owner: str = "u1") -> str:
    return encode_cursor(position, owner_id=owner, filters=FILTERS, secret=SECRET)


def _decode(
    token: str,
    owner: str = "u1",
    filters: Mapping[str, object] = FILTERS,
    secret: str = SECRET,
) -> Keyset:
    return decode_cursor(token, owner_id=owner, filters=filters, secret=secret)


def _assert_invalid(
    token: str, owner: str = "u1", filters: Mapping[str, object] = FILTERS, secret: str = SECRET
) -> None:
    with pytest.raises(BadRequest) as info:
        _decode(token, owner, filters, secret)
    assert info.value.code == "INVALID_CURSOR"
    assert info.value.status == 400


def test_round_trip_is_exact_to_the_microsecond_and_url_safe() -> None:
    position = Keyset(datetime(2026, 11, 27, 17, 30, 1, 123456, tzinfo=UTC), uuid4())
    token = _encode(position)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert _decode(token) == position


def test_timezones_other_than_utc_encode_the_same_instant() -> None:
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    other = moment.astimezone(ZoneInfo("Asia/Tokyo"))
    position = Keyset(other, uuid4())
    assert _decode(_encode(position)).created_at == moment


@given(
    micros=st.integers(min_value=-(10**15), max_value=10**16),
)
def test_round_trip_any_instant(micros: int) -> None:
    position = Keyset(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros), uuid4())
    assert _decode(_encode(position)) == position


def test_flipping_any_byte_is_rejected() -> None:
    token = _encode(Keyset(datetime.now(UTC), uuid4()))
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        _assert_invalid(base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode())


def test_foreign_owner_changed_filters_and_wrong_secret_are_rejected() -> None:
    token = _encode(Keyset(datetime.now(UTC), uuid4()))
    _assert_invalid(token, owner="u2")
    _assert_invalid(token, filters={**FILTERS, "platform": "youtube_shorts"})
    _assert_invalid(token, filters={**FILTERS, "tags": ["a"]})
    _assert_invalid(token, filters={**FILTERS, "q": "waterx"})
    _assert_invalid(token, secret="another-secret")


@pytest.mark.parametrize(
    "garbage",
    ["", "=", "a", "abc=", "not a cursor", "../../etc", "%00", "A" * 55, "A" * 500, "é" * 10],
)
def test_garbage_is_rejected(garbage: str) -> None:
    _assert_invalid(garbage)


def test_truncated_and_extended_tokens_are_rejected() -> None:
    token = _encode(Keyset(datetime.now(UTC), uuid4()))
    _assert_invalid(token[:-1])
    _assert_invalid(token + "A")
    _assert_invalid(token[:-4])


@given(st.text(max_size=200))
def test_arbitrary_text_never_decodes(text: str) -> None:
    with pytest.raises(BadRequest) as info:
        _decode(text)
    assert info.value.code == "INVALID_CURSOR"


def test_naive_datetimes_and_empty_secrets_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        _encode(Keyset(datetime(2026, 1, 1), uuid4()))
    with pytest.raises(ValueError):
        encode_cursor(Keyset(datetime.now(UTC), uuid4()), owner_id="u", filters={}, secret="")
