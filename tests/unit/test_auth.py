"""Authenticator in HS256 (development) mode, header parsing, claims, require_admin.

JWKS mode runs against a real local JWKS server in tests/integration/test_jwks.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest

from devtools.devtoken import mint_dev_token
from devtools.jwks_server import SigningKey
from shared.api.auth import (
    SUBJECT_PATTERN,
    Authenticator,
    Principal,
    is_valid_subject,
    require_admin,
)
from shared.config import DEV_HS256_SECRET, Settings
from shared.errors import Forbidden, Unauthenticated
from tests.support.clock import FakeClock

SECRET = "unit-test-hs256-secret-0123456789abcdef"
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_built(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None) -> str:
    """A compact JWS built byte by byte (PyJWT refuses to make some of the hostile ones)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(sig)}"


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "user-1", "iat": int(NOW), "exp": int(NOW) + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs_token(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def auth(clock: FakeClock) -> Authenticator:
    return Authenticator(
        jwks_url=None, issuer=None, audience=None, hs256_secret=SECRET, clock=clock
    )


def bearer(token: str) -> str:
    return f"Bearer {token}"


def reject(auth: Authenticator, header: str | None) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        auth.authenticate(header)
    assert info.value.status == 401
    assert info.value.code == "UNAUTHENTICATED"
    return info.value


# -- accepted --------------------------------------------------------------------------


def test_valid_hs256_token_gives_principal(auth: Authenticator) -> None:
    assert auth.authenticate(bearer(hs_token(claims()))) == Principal("user-1", is_admin=False)


def test_admin_role_claim(auth: Authenticator) -> None:
    principal = auth.authenticate(bearer(hs_token(claims(role="admin"))))
    assert principal.is_admin
    require_admin(principal)


@pytest.mark.parametrize("role", ["Admin", "user", ["admin"], True, ""])
def test_only_exact_role_admin_is_admin(auth: Authenticator, role: Any) -> None:
    assert not auth.authenticate(bearer(hs_token(claims(role=role)))).is_admin


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_scheme_is_case_insensitive_and_whitespace_tolerant(
    auth: Authenticator, scheme: str
) -> None:
    assert auth.authenticate(f"  {scheme}   {hs_token(claims())} ").user_id == "user-1"


@pytest.mark.parametrize(
    "sub",
    [
        "a", "x" * 128, "auth0|abc123", "google-oauth2|1234", "samlp|okta|a@b.example",
        "u:1@example.com", "A.b-c_d", "AAAA+b/c==", "adfs|CORP\\jo", "ünï", "ユーザー", "a%3Ab",
    ],
)  # fmt: skip
def test_subject_charset_accepted(auth: Authenticator, sub: str) -> None:
    assert auth.authenticate(bearer(hs_token(claims(sub=sub)))).user_id == sub
    assert is_valid_subject(sub)


def test_subject_pattern_works_as_a_schema_pattern() -> None:
    # The admin API validates user ids with it through pydantic (a Rust regex engine).
    from pydantic import BaseModel, Field, ValidationError

    class Body(BaseModel):
        user_id: str = Field(pattern=SUBJECT_PATTERN)

    assert Body(user_id="google-oauth2|1234").user_id == "google-oauth2|1234"
    for bad in ("", "a b", "a\nb", "x" * 129, "a\x85b"):
        with pytest.raises(ValidationError):
            Body(user_id=bad)


def test_leeway_tolerates_small_clock_skew(auth: Authenticator, clock: FakeClock) -> None:
    token = hs_token(claims(exp=int(NOW) - 10, nbf=int(NOW) + 10, iat=int(NOW) + 10))
    assert auth.authenticate(bearer(token)).user_id == "user-1"


def test_issuer_and_audience_checked_in_hs256_mode(clock: FakeClock) -> None:
    auth = Authenticator(
        jwks_url=None, issuer="https://iss", audience="reel", hs256_secret=SECRET, clock=clock
    )
    good = claims(iss="https://iss", aud="reel")
    assert auth.authenticate(bearer(hs_token(good))).user_id == "user-1"
    assert auth.authenticate(bearer(hs_token({**good, "aud": ["other", "reel"]})))
    for bad in (
        {**good, "iss": "https://evil"},
        {**good, "iss": "https://iss/extra"},
        {**good, "iss": "https://is"},
        {**good, "aud": "other"},
        {**good, "aud": ["other"]},
        {k: v for k, v in good.items() if k != "iss"},
        {k: v for k, v in good.items() if k != "aud"},
    ):
        reject(auth, bearer(hs_token(bad)))


# -- rejected --------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(auth: Authenticator, header: str | None) -> None:
    assert reject(auth, header).message == "Missing bearer token."


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer a b", "abc.def.ghi", "Bearer: x.y.z"],
)
def test_wrong_scheme_or_shape(auth: Authenticator, header: str) -> None:
    reject(auth, header)


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "!!!.!!!.!!!",
        "e30.e30.",  # {} header: no alg
        b64(b"[1]") + "." + b64(b"{}") + ".",
        b64(b'{"alg":"HS256"}') + "." + b64(b"[]") + "." + b64(b"x"),
        b64(b"[" * 6000) + ".e30.",  # nesting bomb: must not become a RecursionError 500
        "é" * 20,
        "a" * 9000,
    ],
)
def test_malformed_tokens(auth: Authenticator, token: str) -> None:
    reject(auth, bearer(token))


def test_expired(auth: Authenticator, clock: FakeClock) -> None:
    token = hs_token(claims(exp=int(NOW) + 60))
    clock.now = NOW + 60 + 31
    assert reject(auth, bearer(token)).message == "Token has expired."


def test_expiry_is_exact_at_the_edge_of_the_leeway(auth: Authenticator, clock: FakeClock) -> None:
    # RFC 7519 §4.1.4: not accepted "on or after" exp; the 30 s leeway moves the edge, no more.
    token = hs_token(claims(exp=int(NOW) + 60))
    clock.now = NOW + 60 + 30 - 1
    assert auth.authenticate(bearer(token)).user_id == "user-1"
    clock.now = NOW + 60 + 30
    assert reject(auth, bearer(token)).message == "Token has expired."


def test_not_before_is_exact_at_the_edge_of_the_leeway(auth: Authenticator) -> None:
    assert auth.authenticate(bearer(hs_token(claims(nbf=int(NOW) + 30)))).user_id == "user-1"
    reject(auth, bearer(hs_token(claims(nbf=int(NOW) + 31))))


def test_not_yet_valid_beyond_leeway(auth: Authenticator) -> None:
    reject(auth, bearer(hs_token(claims(nbf=int(NOW) + 31))))
    reject(auth, bearer(hs_token(claims(iat=int(NOW) + 3600))))


@pytest.mark.parametrize("claim", ["exp", "sub"])
def test_required_claims(auth: Authenticator, claim: str) -> None:
    reject(auth, bearer(hs_token(claims(**{claim: None}))))


@pytest.mark.parametrize(
    ("name", "value"),
    [("exp", "2100-01-01"), ("exp", True), ("exp", None), ("nbf", "soon"), ("iat", [1])],
)
def test_malformed_time_claims(auth: Authenticator, name: str, value: Any) -> None:
    payload = claims()
    payload[name] = value
    reject(auth, bearer(hand_built({"alg": "HS256", "typ": "JWT"}, payload, SECRET.encode())))


@pytest.mark.parametrize(
    "sub",
    [
        "",
        "x" * 129,
        "a b",
        "a\tb",
        "a\nb",
        "a\x00b",
        "a\x7fb",
        "a\x85b",
        "a\u00a0b",
        "a\u200bb",
        "a\u2028b",
        "\ufeffa",
        "a\ud800b",
        " a",
        123,
        None,
    ],
)
def test_bad_subject(auth: Authenticator, sub: Any) -> None:
    assert not (isinstance(sub, str) and is_valid_subject(sub))
    payload = claims()
    payload["sub"] = sub
    reject(auth, bearer(hand_built({"alg": "HS256"}, payload, SECRET.encode())))


def test_wrong_secret(auth: Authenticator) -> None:
    reject(auth, bearer(hs_token(claims(), secret="another-secret-that-is-long-enough-xx")))


def test_tampered_payload(auth: Authenticator) -> None:
    header, _, sig = hs_token(claims()).split(".")
    forged = b64(json.dumps(claims(role="admin")).encode())
    reject(auth, bearer(f"{header}.{forged}.{sig}"))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_alg_none(auth: Authenticator, alg: str) -> None:
    reject(auth, bearer(hand_built({"alg": alg, "typ": "JWT"}, claims())))
    reject(auth, bearer(hand_built({"alg": alg}, claims(), SECRET.encode())))


@pytest.mark.parametrize("alg", ["HS384", "HS512", "PS256", "EdDSA", 256, None])
def test_other_algorithms_rejected(auth: Authenticator, alg: Any) -> None:
    reject(auth, bearer(hand_built({"alg": alg}, claims(), SECRET.encode())))


def test_rs256_token_rejected_in_hs256_only_mode(auth: Authenticator) -> None:
    key = SigningKey.rsa(kid="k1")
    reject(auth, bearer(key.sign(claims())))


def test_rejection_never_echoes_the_token(auth: Authenticator) -> None:
    token = hs_token(claims(sub="bad sub"))
    error = reject(auth, bearer(token))
    rendered = json.dumps(error.body("req-1"))
    for part in token.split("."):
        assert part not in rendered
    assert "bad sub" not in rendered
    assert error.__cause__ is None


# -- admin, construction, settings -----------------------------------------------------


def test_require_admin_forbids_non_admin() -> None:
    with pytest.raises(Forbidden) as info:
        require_admin(Principal("u", is_admin=False))
    assert info.value.status == 403
    assert info.value.code == "FORBIDDEN"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jwks_url": None, "hs256_secret": None},
        {"jwks_url": None, "hs256_secret": "short"},
        {"jwks_url": "https://x", "hs256_secret": None, "leeway_s": -1},
        {"jwks_url": "https://x", "hs256_secret": None, "jwks_cache_ttl_s": 0},
    ],
)
def test_constructor_rejects_unusable_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Authenticator(issuer=None, audience=None, **kwargs)


def test_from_settings_development_uses_dev_secret() -> None:
    auth = Authenticator.from_settings(Settings.from_env({"AUTH_AUDIENCE": "reel"}))
    token = mint_dev_token("dev-user", secret=DEV_HS256_SECRET, audience="reel")
    assert auth.authenticate(bearer(token)) == Principal("dev-user", is_admin=False)


def test_from_settings_jwks_only_refuses_hs256() -> None:
    auth = Authenticator.from_settings(
        Settings.from_env({"AUTH_JWKS_URL": "http://127.0.0.1:9/jwks"})
    )
    reject(auth, bearer(mint_dev_token("dev-user", secret=DEV_HS256_SECRET)))


def test_from_settings_production_never_accepts_hs256() -> None:
    settings = Settings.from_env(
        {
            "APP_ENV": "production",
            "AUTH_JWKS_URL": "https://idp.example/jwks",
            "AUTH_HS256_SECRET": SECRET,  # refused by load_settings; built by hand here
        }
    )
    auth = Authenticator.from_settings(settings)
    reject(auth, bearer(mint_dev_token("u", secret=SECRET)))


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example/jwks",
        "http://127.0.0.1.idp.example/jwks",
        "http://10.0.0.1/jwks",
        "ftp://127.0.0.1/jwks",
        "https:///jwks",
    ],
)
def test_from_settings_production_requires_https_jwks(url: str) -> None:
    with pytest.raises(ValueError, match="AUTH_JWKS_URL"):
        Authenticator.from_settings(
            Settings.from_env({"APP_ENV": "production", "AUTH_JWKS_URL": url})
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example/jwks",
        "http://127.0.0.1:8123/.well-known/jwks.json",
        "http://127.8.0.1/jwks",
        "http://[::1]:9/jwks",
        "http://localhost:9/jwks",
    ],
)
def test_from_settings_production_accepts_https_or_loopback_jwks(url: str) -> None:
    # Loopback never leaves the machine (the production rehearsal's issuer lives there).
    Authenticator.from_settings(Settings.from_env({"APP_ENV": "production", "AUTH_JWKS_URL": url}))


# -- mint_dev_token --------------------------------------------------------------------


def test_mint_dev_token_round_trip(clock: FakeClock) -> None:
    auth = Authenticator(
        jwks_url=None, issuer="iss", audience="aud", hs256_secret=SECRET, clock=clock
    )
    token = mint_dev_token(
        "u-42", secret=SECRET, admin=True, ttl_s=120, issuer="iss", audience="aud", now=NOW
    )
    assert auth.authenticate(bearer(token)) == Principal("u-42", is_admin=True)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_signature": False})
    assert payload == {
        "sub": "u-42",
        "iat": int(NOW),
        "exp": int(NOW) + 120,
        "role": "admin",
        "iss": "iss",
        "aud": "aud",
    }
    clock.now = NOW + 120 + 31
    reject(auth, bearer(token))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": "bad id", "secret": SECRET},
        {"user_id": "", "secret": SECRET},
        {"user_id": "u", "secret": SECRET, "ttl_s": 0},
        {"user_id": "u", "secret": "short"},
    ],
)
def test_mint_dev_token_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mint_dev_token(**kwargs)


# Every rejection answers the same 401 to the caller; the reason goes to the debug log,
# the only place an operator can tell a clock skew from a wrong key.
_REASONS = [
    (None, "no Authorization header"),
    ("Basic abc", "not a Bearer credential"),
    ("Bearer " + "é" * 4, "token too long or not ASCII"),
    ("Bearer abc", "unreadable header (DecodeError)"),
    (bearer(hand_built({"alg": "none", "typ": "JWT"}, claims())), "algorithm not accepted: 'none'"),
    # The header's alg is quoted, cut at 16 characters: a hostile header cannot flood the log.
    (bearer(hand_built({"alg": "A" * 40}, claims())), f"algorithm not accepted: {'A' * 16!r}"),
    # PyJWT refuses a kid that is not a string while reading the header (so the
    # authenticator's own "kid is not a string" is a second line; mutate_equivalent.toml).
    (
        bearer(hand_built({"alg": "HS256", "kid": 7}, claims(), SECRET.encode())),
        "unreadable header (InvalidTokenError)",
    ),
    (bearer(hs_token(claims(), secret="x" * 40)), "verification failed (InvalidSignatureError)"),
    (bearer(hs_token(claims(sub="a b"))), "sub outside the allowed charset or length"),
    (bearer(hs_token(claims(exp=int(NOW) - 31))), "expired"),
    (bearer(hs_token(claims(nbf=int(NOW) + 31))), "nbf in the future"),
    (bearer(hs_token(claims(iat=int(NOW) + 31))), "iat in the future"),
    (bearer(hs_token(claims(nbf="soon"))), "nbf is not a NumericDate"),
]


@pytest.mark.parametrize(("header", "reason"), _REASONS)
def test_each_rejection_logs_its_reason(
    auth: Authenticator, caplog: pytest.LogCaptureFixture, header: str | None, reason: str
) -> None:
    with caplog.at_level(logging.DEBUG, logger="shared.api.auth"):
        reject(auth, header)
    assert [r.getMessage() for r in caplog.records if r.name == "shared.api.auth"] == [
        f"auth rejected: {reason}"
    ]


def test_the_forbidden_message_names_the_missing_role() -> None:
    with pytest.raises(Forbidden) as info:
        require_admin(Principal("u", is_admin=False))
    assert info.value.message == "Admin role required."


def test_from_settings_passes_issuer_and_audience_on() -> None:
    auth = Authenticator.from_settings(
        Settings.from_env({"AUTH_ISSUER": "https://iss", "AUTH_AUDIENCE": "reel"})
    )
    now = int(time.time())  # from_settings keeps the system clock

    def token(iss: str, aud: str) -> str:
        payload = claims(iss=iss, aud=aud, iat=now, exp=now + 600)
        return bearer(hs_token(payload, secret=DEV_HS256_SECRET))

    assert auth.authenticate(token("https://iss", "reel")).user_id == "user-1"
    reject(auth, token("https://other", "reel"))
    reject(auth, token("https://iss", "other"))
    auth.close()  # nothing to close in HS256 mode: no JWKS client


# -- the edges of the configuration and of the header (make mutate) --------------------

_NEEDS_A_KEY = "Authenticator needs a JWKS URL or an HS256 secret"
_SHORT_SECRET = "HS256 secret must be at least 32 bytes"
_BAD_TIMES = "leeway_s and min_refresh_interval_s must be >= 0, ttl > 0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jwks_url": None, "hs256_secret": None}, _NEEDS_A_KEY),
        ({"jwks_url": "", "hs256_secret": ""}, _NEEDS_A_KEY),
        ({"jwks_url": None, "hs256_secret": "x" * 31}, _SHORT_SECRET),
        ({"jwks_url": None, "hs256_secret": "é" * 15}, _SHORT_SECRET),  # 30 bytes
        ({"jwks_url": None, "hs256_secret": SECRET, "leeway_s": -1}, _BAD_TIMES),
        ({"jwks_url": None, "hs256_secret": SECRET, "jwks_cache_ttl_s": 0}, _BAD_TIMES),
        ({"jwks_url": None, "hs256_secret": SECRET, "min_refresh_interval_s": -1}, _BAD_TIMES),
        # With a JWKS URL too: the authenticator refuses them before the key cache does.
        ({"jwks_url": "https://x", "hs256_secret": None, "jwks_cache_ttl_s": 0}, _BAD_TIMES),
        ({"jwks_url": "https://x", "hs256_secret": None, "min_refresh_interval_s": -0.5},
         _BAD_TIMES),
    ],
)  # fmt: skip
def test_constructor_says_what_is_wrong(kwargs: dict[str, Any], message: str) -> None:
    # The operator reads this at start-up: it names the setting, in these words.
    with pytest.raises(ValueError) as info:
        Authenticator(issuer=None, audience=None, **kwargs)
    assert str(info.value) == message


def test_constructor_accepts_the_edge_values(clock: FakeClock) -> None:
    secret = "s" * 32  # exactly the minimum
    auth = Authenticator(
        jwks_url="https://idp.example/jwks", issuer=None, audience=None, hs256_secret=secret,
        leeway_s=0, jwks_cache_ttl_s=1, min_refresh_interval_s=0, clock=clock,
    )  # fmt: skip
    try:
        token = hs_token(claims(exp=int(NOW) + 60), secret=secret)
        assert auth.authenticate(bearer(token)).user_id == "user-1"
        # No leeway: rejected at exp itself, accepted one second before.
        clock.now = NOW + 59
        assert auth.authenticate(bearer(token)).user_id == "user-1"
        clock.now = NOW + 60
        assert reject(auth, bearer(token)).message == "Token has expired."
    finally:
        auth.close()


def test_wrong_scheme_message(auth: Authenticator) -> None:
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer a b"):
        assert reject(auth, header).message == "Authorization header must be 'Bearer <token>'."


def _token_of_length(length: int) -> str:
    """A valid HS256 token exactly ``length`` characters long (padded with a claim)."""
    for n in range(length):
        for kid in ("k", "kk", "kkk"):
            token = hs_token(claims(pad="x" * n), kid=kid)
            if len(token) == length:
                return token
            if len(token) > length + 8:
                break
    raise AssertionError(f"no token of {length} characters")


def test_token_length_cap_is_exact(auth: Authenticator, caplog: pytest.LogCaptureFixture) -> None:
    assert auth.authenticate(bearer(_token_of_length(8192))).user_id == "user-1"
    with caplog.at_level(logging.DEBUG, logger="shared.api.auth"):
        reject(auth, bearer(_token_of_length(8193)))
    assert "auth rejected: token too long or not ASCII" in caplog.messages


def test_time_claims_follow_the_injected_clock_only() -> None:
    # PyJWT's own exp/nbf/iat checks (on the system clock, without our leeway) are off:
    # a token that is valid at the injected instant but long expired by the system clock
    # (and one not yet valid by it) is accepted.
    then = 1_000_000_000.0  # 2001
    auth = Authenticator(
        jwks_url=None, issuer=None, audience=None, hs256_secret=SECRET, clock=lambda: then
    )
    past = claims(iat=int(then), nbf=int(then), exp=int(then) + 60)
    assert auth.authenticate(bearer(hs_token(past))).user_id == "user-1"
    later = 4_000_000_000.0  # 2096
    auth = Authenticator(
        jwks_url=None, issuer=None, audience=None, hs256_secret=SECRET, clock=lambda: later
    )
    future = claims(iat=int(later), nbf=int(later), exp=int(later) + 60)
    assert auth.authenticate(bearer(hs_token(future))).user_id == "user-1"


def test_pyjwt_enforces_the_minimum_key_length_too(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A second line behind the constructor's own check: with that check loosened, a
    # 16-byte HS256 key still verifies nothing (PyJWT's enforce_minimum_key_length).
    import shared.api.auth as auth_module

    monkeypatch.setattr(auth_module, "MIN_HS256_SECRET_BYTES", 1)
    short = b"0123456789abcdef"
    auth = Authenticator(
        jwks_url=None, issuer=None, audience=None, hs256_secret=short.decode(), clock=clock
    )
    with caplog.at_level(logging.DEBUG, logger="shared.api.auth"):
        reject(auth, bearer(hand_built({"alg": "HS256", "typ": "JWT"}, claims(), short)))
    assert caplog.messages == ["auth rejected: verification failed (InvalidKeyError)"]


def test_from_settings_production_says_what_url_it_needs() -> None:
    with pytest.raises(ValueError) as info:
        Authenticator.from_settings(
            Settings.from_env({"APP_ENV": "production", "AUTH_JWKS_URL": "http://idp.example/j"})
        )
    assert str(info.value) == (
        "AUTH_JWKS_URL: an https:// (or loopback http://) URL is required in production"
    )
