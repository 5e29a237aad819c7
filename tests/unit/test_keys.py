"""Key builders produce exactly the documented strings; period helpers are UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.redis.keys import (
    Keys,
    encode_component,
    hour_end,
    hour_key,
    month_end,
    month_key,
    month_key_from_label,
    month_label,
    seconds_until_hour_end,
    seconds_until_month_end,
)

K = Keys("p")


def test_exact_key_strings() -> None:
    assert K.gen_used("u", "202611") == "p:usage:u:gen_used:202611"
    assert K.gen_hour("u", "2026112713") == "p:burst:u:gen_hour:2026112713"
    assert K.full_regen_used("u", "202611") == "p:usage:u:full_regen_used:202611"
    assert K.regen_cooldown("u", "d") == "p:cooldown:u:regen:d"
    assert K.user_leases("u") == "p:conc:u:leases"
    assert K.lease("l") == "p:conc:lease:l"
    assert K.provider("minimax", "M2", "interactive") == "p:conc:provider:minimax:M2:interactive"
    assert K.idem("u", "create", "k") == "p:idem:u:create:k"
    assert K.plan_effective("u") == "p:user:u:plan_effective"
    assert K.boost_until("u") == "p:boost:u:pro_until"
    assert K.refund_marker("g") == "p:refund:g"
    assert K.circuit("minimax", "M2") == "p:circuit:minimax:M2"
    assert K.circuit_failures("minimax", "M2") == "p:circuit:minimax:M2:failures"
    assert Keys().lease("l") == "app:conc:lease:l"


def test_period_keys_are_utc() -> None:
    local = datetime(2026, 12, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert month_key(local) == "202611"
    assert hour_key(local) == "2026113023"
    assert month_label(local) == "2026-11"
    assert month_key_from_label("2026-11") == "202611"
    assert month_key(datetime(2026, 11, 5)) == "202611"  # naive is taken as UTC
    now = datetime(2026, 11, 30, 23, 59, 59, 500_000, tzinfo=UTC)
    assert K.month_counters("u", now) == (
        "p:usage:u:gen_used:202611",
        "p:burst:u:gen_hour:2026113023",
        "p:usage:u:full_regen_used:202611",
    )
    with pytest.raises(ValueError):
        month_key_from_label("2026/11")


def test_period_ends_and_retry_after() -> None:
    now = datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC)
    assert month_end(now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert hour_end(now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert month_end(datetime(2026, 2, 10, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
    assert seconds_until_month_end(now) == 1
    assert seconds_until_hour_end(datetime(2026, 1, 1, 10, 0, tzinfo=UTC)) == 3600
    assert seconds_until_month_end(datetime(2027, 1, 1, tzinfo=UTC) - timedelta(days=1)) == 86400


def test_user_state_names_every_per_user_key_once() -> None:
    k = Keys("p")
    now = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # first hour of a year: both wrap
    found = k.user_state(
        "u1", now, months=["2025-06", "2026-01"], hours=["2025123122"],
        draft_ids=["d1", "d1"], idempotency=[("create", "k"), ("library_assets", "k")],
    )  # fmt: skip
    assert len(found) == len(set(found))
    assert set(found) == {
        k.plan_effective("u1"), k.boost_until("u1"), k.user_leases("u1"), k.credits("u1"),
        *(k.gen_used("u1", m) for m in ("202506", "202512", "202601")),
        *(k.full_regen_used("u1", m) for m in ("202506", "202512", "202601")),
        *(k.gen_hour("u1", h) for h in ("2025123122", "2025123123", "2026010100")),
        k.regen_cooldown("u1", "d1"), k.idem("u1", "create", "k"),
        k.idem("u1", "library_assets", "k"),
    }  # fmt: skip
    assert not any("u2" in key for key in found)


def test_the_issue_collision_is_gone() -> None:
    # Joined with ":", user "vic:create:x" sending key "k" read user "vic"'s "x:create:k".
    assert K.idem("vic:create:x", "create", "k") != K.idem("vic", "create", "x:create:k")
    assert K.idem("vic", "create", "x:create:k") == "p:idem:vic:create:x%3Acreate%3Ak"


def test_components_are_encoded_and_ordinary_ids_stay_readable() -> None:
    assert K.user_leases("auth0|abc") == "p:conc:auth0|abc:leases"
    assert K.plan_effective("google-oauth2|1234") == "p:user:google-oauth2|1234:plan_effective"
    assert (
        K.idem("a@b.example", "create", "5d0e-4f.A_b~") == "p:idem:a@b.example:create:5d0e-4f.A_b~"
    )
    assert K.gen_used("u:1", "202611") == "p:usage:u%3A1:gen_used:202611"
    assert K.regen_cooldown("u", "d:1") == "p:cooldown:u:regen:d%3A1"
    assert encode_component("%3A") == "%253A"  # "%" is encoded too: decoding is unique
    assert encode_component("ü") == "%C3%BC"
    assert encode_component("a b/c\n") == "a%20b%2Fc%0A"
    assert encode_component("\ud800") == "%ED%A0%80"  # a lone surrogate is kept, not an error


# A small alphabet rich in separators and escapes, so near-collisions are drawn often,
# plus any text at all.
_component = st.text(st.sampled_from(["a", ":", "%", "3", "A", "|", "ü"]), max_size=6) | st.text(
    max_size=8
)
_triple = st.tuples(_component, _component, _component)


@st.composite
def _same_text_split_again(draw: st.DrawFn) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """A triple, and a triple whose ":"-joined text is the same (the old keys' collisions)."""
    a = draw(_triple)
    parts = ":".join(a).split(":")
    i = draw(st.integers(1, len(parts) - 1))
    j = draw(st.integers(i + 1, len(parts)))
    if j == len(parts):
        return a, a
    b = (":".join(parts[:i]), ":".join(parts[i:j]), ":".join(parts[j:]))
    return a, b


@given(_same_text_split_again())
def test_distinct_triples_never_share_an_idempotency_key(
    pair: tuple[tuple[str, str, str], tuple[str, str, str]],
) -> None:
    a, b = pair
    assert (K.idem(*a) == K.idem(*b)) == (a == b)


@given(_triple)
def test_an_idempotency_key_names_its_triple(triple: tuple[str, str, str]) -> None:
    # A left inverse exists, so no two distinct triples can share a key.
    prefix, kind, *parts = K.idem(*triple).split(":")
    assert (prefix, kind) == ("p", "idem")
    assert tuple(unquote(x, errors="surrogatepass") for x in parts) == triple


@given(a=st.tuples(_component, _component), b=st.tuples(_component, _component))
def test_distinct_inputs_never_share_any_key(a: tuple[str, str], b: tuple[str, str]) -> None:
    for build in (
        K.gen_used,
        K.gen_hour,
        K.full_regen_used,
        K.regen_cooldown,
        K.circuit,
        K.circuit_failures,
    ):
        assert (build(*a) == build(*b)) == (a == b)
    for one in (
        K.user_leases,
        K.plan_effective,
        K.boost_until,
        K.lease,
        K.refund_marker,
        K.qstash_token,
        K.generation_status,
    ):
        assert (one(a[0]) == one(b[0])) == (a[0] == b[0])


@given(_triple)
def test_every_provider_key_component_is_encoded(triple: tuple[str, str, str]) -> None:
    # The provider semaphore names (provider, model, lane); a model such as "org:m" must
    # not share a slot pool with provider "…:org" — each component decodes back on its own.
    prefix, conc, kind, *parts = K.provider(*triple).split(":")
    assert (prefix, conc, kind) == ("p", "conc", "provider")
    assert tuple(unquote(x, errors="surrogatepass") for x in parts) == triple


def test_a_model_with_a_separator_is_encoded_in_the_provider_key() -> None:
    assert K.provider("a", "b:c", "interactive") == "p:conc:provider:a:b%3Ac:interactive"
    assert K.provider("a", "b:c", "interactive") != K.provider("a:b", "c", "interactive")


@given(_component)
def test_an_encoded_component_never_holds_a_separator(value: str) -> None:
    encoded = encode_component(value)
    assert ":" not in encoded
    assert encoded.isascii()
    assert unquote(encoded, errors="surrogatepass") == value
