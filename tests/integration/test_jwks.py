"""Authenticator in JWKS (production) mode against a real local JWKS endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devtools.jwks_server import JwksServer, SigningKey, jwks
from shared.api.auth import Authenticator, Principal
from shared.errors import Unauthenticated
from tests.support.clock import FakeClock

ISSUER = "https://securetoken.example/reel"
AUDIENCE = "reel-content"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.rsa(kid="rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.ec(kid="ec-1")


@pytest.fixture(scope="module")
def other_rsa() -> SigningKey:
    return SigningKey.rsa(kid="rsa-2")


@pytest.fixture
def server(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer(jwks([rsa_key, ec_key]), hang_s=5.0) as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def make_auth(server: JwksServer, clock: FakeClock) -> Iterator[Any]:
    made: list[Authenticator] = []

    def make(**kwargs: Any) -> Authenticator:
        options: dict[str, Any] = {
            "jwks_url": server.url,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "hs256_secret": None,
            "clock": clock,
        }
        options.update(kwargs)
        auth = Authenticator(**options)
        made.append(auth)
        return auth

    yield make
    for auth in made:
        auth.close()


@pytest.fixture
def auth(make_auth: Any) -> Authenticator:
    result: Authenticator = make_auth()
    return result


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "firebase-uid-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(NOW),
        "exp": int(NOW) + 3600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str) -> str:
    return f"Bearer {token}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reject(auth: Authenticator, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as info:
        auth.authenticate(bearer(token))
    assert info.value.status == 401
    return info.value


# -- accepted --------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
def test_valid_rs256_and_es256(
    request: pytest.FixtureRequest, auth: Authenticator, server: JwksServer, key_name: str
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)
    assert auth.authenticate(bearer(key.sign(claims()))) == Principal("firebase-uid-1", False)
    assert server.request_count == 1


def test_admin_claim(auth: Authenticator, rsa_key: SigningKey) -> None:
    assert auth.authenticate(bearer(rsa_key.sign(claims(role="admin")))).is_admin


def test_keys_are_cached(auth: Authenticator, server: JwksServer, rsa_key: SigningKey) -> None:
    for _ in range(20):
        auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 1


def test_token_without_kid_only_when_the_set_has_one_key(
    server: JwksServer, make_auth: Any, rsa_key: SigningKey
) -> None:
    anonymous = rsa_key.with_kid(None)
    reject(make_auth(), anonymous.sign(claims()))  # two keys in the set: ambiguous
    server.set_keys([rsa_key])
    assert make_auth().authenticate(bearer(anonymous.sign(claims()))).user_id


# -- rejected --------------------------------------------------------------------------


def test_missing_header_and_wrong_scheme(auth: Authenticator, rsa_key: SigningKey) -> None:
    for header in (None, "", f"Basic {rsa_key.sign(claims())}", "Bearer not.a.jwt"):
        with pytest.raises(Unauthenticated):
            auth.authenticate(header)


def test_expired(auth: Authenticator, clock: FakeClock, rsa_key: SigningKey) -> None:
    token = rsa_key.sign(claims(exp=int(NOW) + 60))
    clock.now = NOW + 60 + 31
    assert reject(auth, token).message == "Token has expired."


def test_not_yet_valid(auth: Authenticator, rsa_key: SigningKey) -> None:
    reject(auth, rsa_key.sign(claims(nbf=int(NOW) + 120)))


@pytest.mark.parametrize(
    "override",
    [
        {"iss": "https://securetoken.example/other"},
        {"iss": None},
        {"aud": "someone-else"},
        {"aud": None},
        {"sub": "has space"},
        {"sub": None},
        {"exp": None},
    ],
)
def test_bad_claims(auth: Authenticator, ec_key: SigningKey, override: dict[str, Any]) -> None:
    payload = claims()
    payload.update(override)
    reject(auth, ec_key.sign({k: v for k, v in payload.items() if v is not None}))


def test_alg_none(auth: Authenticator, server: JwksServer) -> None:
    header = b64(json.dumps({"alg": "none", "kid": "rsa-1", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(role="admin")).encode())
    reject(auth, f"{header}.{body}.")
    reject(auth, f"{header}.{body}")
    assert server.request_count == 0  # rejected before any key lookup


def test_forged_signature_with_same_kid(auth: Authenticator, rsa_key: SigningKey) -> None:
    attacker = SigningKey.rsa(kid=rsa_key.kid)
    reject(auth, attacker.sign(claims(role="admin")))
    attacker_ec = SigningKey.ec(kid="ec-1")
    reject(auth, attacker_ec.sign(claims(role="admin")))


def test_tampered_payload(auth: Authenticator, rsa_key: SigningKey) -> None:
    header, _, sig = rsa_key.sign(claims()).split(".")
    reject(auth, f"{header}.{b64(json.dumps(claims(role='admin')).encode())}.{sig}")


def test_algorithm_must_match_key_type(
    auth: Authenticator, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    # An ES256 token naming the RSA key's kid (and vice versa) finds no key.
    reject(auth, ec_key.sign(claims(), headers={"kid": rsa_key.kid}))
    reject(auth, rsa_key.sign(claims(), headers={"kid": ec_key.kid}))


@pytest.mark.parametrize("secret_form", ["pem", "jwk_json"])
def test_hs256_key_confusion_with_public_key(
    make_auth: Any, rsa_key: SigningKey, secret_form: str
) -> None:
    """The classic attack: HMAC-sign with the (public) verification key as the secret."""
    secret = (
        rsa_key.public_pem() if secret_form == "pem" else json.dumps(rsa_key.public_jwk()).encode()
    )
    header = b64(json.dumps({"alg": "HS256", "kid": rsa_key.kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims(role="admin")).encode())
    sig = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{b64(sig)}"
    reject(make_auth(), token)
    # Also when an HS256 secret is configured next to the JWKS (development).
    reject(make_auth(hs256_secret="dev-secret-0123456789abcdef-0123456789"), token)


def test_symmetric_and_foreign_keys_in_the_set_are_ignored(
    server: JwksServer, make_auth: Any, rsa_key: SigningKey
) -> None:
    shared_secret = b"published-oct-key-0123456789abcdef"
    server.set_document(
        {
            "keys": [
                {"kty": "oct", "kid": "oct-1", "k": b64(shared_secret), "alg": "HS256"},
                rsa_key.public_jwk(alg="RS512"),  # declared for another algorithm
                rsa_key.with_kid("enc-1").public_jwk(use="enc"),
                SigningKey.rsa(kid="small", bits=1024).public_jwk(),
                {"kty": "RSA", "kid": "junk", "n": "!!", "e": "AQAB"},
                "not-a-dict",
            ]
        }
    )
    auth = make_auth()
    header = b64(json.dumps({"alg": "HS256", "kid": "oct-1"}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = hmac.new(shared_secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    reject(auth, f"{header}.{body}.{b64(sig)}")
    reject(auth, rsa_key.sign(claims()))
    reject(auth, rsa_key.with_kid("enc-1").sign(claims()))


def test_unknown_kid_rejected_after_one_refetch(
    auth: Authenticator, server: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 1
    clock.now += 31  # past the refresh interval
    reject(auth, SigningKey.rsa(kid="stranger").sign(claims()))
    assert server.request_count == 2


# -- rotation and rate limiting --------------------------------------------------------


def test_key_rotation_new_kid_triggers_one_refetch(
    auth: Authenticator,
    server: JwksServer,
    rsa_key: SigningKey,
    other_rsa: SigningKey,
    clock: FakeClock,
) -> None:
    assert auth.authenticate(bearer(rsa_key.sign(claims())))
    server.set_keys([other_rsa])  # the IdP rotates
    clock.now += 31
    assert auth.authenticate(bearer(other_rsa.sign(claims()))).user_id == "firebase-uid-1"
    assert server.request_count == 2
    assert auth.authenticate(bearer(other_rsa.sign(claims())))
    assert server.request_count == 2
    # The refetched set replaces the cache whole: a key the IdP dropped stops verifying.
    reject(auth, rsa_key.sign(claims()))
    assert server.request_count == 2


def test_rotation_is_picked_up_on_cold_cache_without_waiting(
    auth: Authenticator, server: JwksServer, other_rsa: SigningKey
) -> None:
    server.set_keys([other_rsa])
    assert auth.authenticate(bearer(other_rsa.sign(claims())))
    assert server.request_count == 1


def test_spraying_unknown_kids_is_rate_limited(
    auth: Authenticator, server: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    auth.authenticate(bearer(rsa_key.sign(claims())))
    clock.now += 31
    attacker = SigningKey.ec(kid="x")
    for i in range(50):
        reject(auth, attacker.with_kid(f"spray-{i}").sign(claims()))
        clock.now += 0.1
    assert 1 <= server.request_count <= 2
    # Legitimate traffic is unaffected.
    assert auth.authenticate(bearer(rsa_key.sign(claims())))


def test_spraying_from_many_threads_is_rate_limited(
    auth: Authenticator, server: JwksServer, rsa_key: SigningKey
) -> None:
    attacker = SigningKey.ec(kid="x")
    tokens = [attacker.with_kid(f"spray-{i}").sign(claims()) for i in range(50)]
    good = rsa_key.sign(claims())
    failures: list[BaseException] = []
    accepted: list[Principal] = []
    barrier = threading.Barrier(25)

    def worker(batch: list[str]) -> None:
        barrier.wait()
        for token in batch:
            try:
                auth.authenticate(bearer(token))
            except Unauthenticated:
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)
        accepted.append(auth.authenticate(bearer(good)))

    threads = [threading.Thread(target=worker, args=(tokens[i::25],)) for i in range(25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not failures
    assert len(accepted) == 25
    assert server.request_count == 1


def test_stale_cache_is_refreshed_after_ttl(
    auth: Authenticator, server: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    auth.authenticate(bearer(rsa_key.sign(claims())))
    clock.now += 299
    auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 1
    clock.now += 2
    auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 2


# -- JWKS failures ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_jwks_down_with_no_cache_is_unauthenticated(
    server: JwksServer, make_auth: Any, rsa_key: SigningKey, clock: FakeClock, mode: Any
) -> None:
    server.set_mode(mode)
    with httpx.Client(timeout=0.3) as http:
        auth = make_auth(http=http)
        reject(auth, rsa_key.sign(claims()))
        reject(auth, rsa_key.sign(claims()))  # within the retry interval: no new fetch
        assert server.request_count == 1
        server.set_mode("ok")
        clock.now += 1.0  # empty cache: retried after a second, not the full interval
        assert auth.authenticate(bearer(rsa_key.sign(claims())))
        assert server.request_count == 2


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b'{"keys": "nope"}', b"[]", b'{"keys": []}', b"[" * 5000],
)
def test_unusable_jwks_document_is_unauthenticated(
    server: JwksServer, auth: Authenticator, rsa_key: SigningKey, body: bytes
) -> None:
    server.set_raw(body)
    reject(auth, rsa_key.sign(claims()))


def test_oversized_jwks_document_is_refused(
    server: JwksServer, auth: Authenticator, rsa_key: SigningKey
) -> None:
    document = jwks([rsa_key])
    document["padding"] = "x" * 300_000
    server.set_document(document)
    reject(auth, rsa_key.sign(claims()))


def test_unreachable_jwks_is_unauthenticated(rsa_key: SigningKey) -> None:
    with JwksServer() as srv:
        url = srv.url  # the port is closed once the server stops
    auth = Authenticator(jwks_url=url, issuer=ISSUER, audience=AUDIENCE, hs256_secret=None)
    try:
        reject(auth, rsa_key.sign(claims()))
    finally:
        auth.close()


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_jwks_down_keeps_serving_cached_keys(
    server: JwksServer,
    make_auth: Any,
    rsa_key: SigningKey,
    other_rsa: SigningKey,
    clock: FakeClock,
    mode: Any,
) -> None:
    with httpx.Client(timeout=0.3) as http:
        auth = make_auth(http=http)
        assert auth.authenticate(bearer(rsa_key.sign(claims())))
        server.set_mode(mode)
        clock.now += 400  # stale: a refresh is attempted and fails
        assert auth.authenticate(bearer(rsa_key.sign(claims())))
        assert server.request_count == 2
        reject(auth, other_rsa.sign(claims()))  # unknown kid, refetch rate-limited
        assert server.request_count == 2
        clock.now += 31
        reject(auth, other_rsa.sign(claims()))
        assert server.request_count == 3
        assert auth.authenticate(bearer(rsa_key.sign(claims())))


def test_threads_queued_behind_a_hanging_fetch_do_not_refetch(
    server: JwksServer, make_auth: Any, rsa_key: SigningKey
) -> None:
    server.set_mode("hang")
    errors: list[BaseException] = []
    with httpx.Client(timeout=1.2) as http:  # longer than the 1 s empty-cache retry
        auth = make_auth(http=http, clock=time.time)
        token = rsa_key.sign(claims(iat=None, exp=int(time.time()) + 600))

        def worker() -> None:
            try:
                auth.authenticate(bearer(token))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(errors) == 10
    assert all(isinstance(e, Unauthenticated) for e in errors)
    assert server.request_count == 1


def test_stale_known_key_does_not_wait_for_a_refresh_in_flight(
    server: JwksServer, make_auth: Any, rsa_key: SigningKey, clock: FakeClock
) -> None:
    with httpx.Client(timeout=2.0) as http:
        auth = make_auth(http=http)
        token = rsa_key.sign(claims())
        assert auth.authenticate(bearer(token))
        clock.now += 301
        server.set_mode("hang")
        refresher = threading.Thread(target=auth.authenticate, args=(bearer(token),))
        refresher.start()
        deadline = time.monotonic() + 5
        while server.request_count < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.request_count == 2  # the refresh is in flight
        started = time.monotonic()
        assert auth.authenticate(bearer(token)).user_id == "firebase-uid-1"
        assert time.monotonic() - started < 0.5
        refresher.join(timeout=10)


# -- the cache settings, to the second (make mutate) -----------------------------------


def test_default_cache_policy_at_its_edges(
    auth: Authenticator, server: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    # Defaults: keys cached for 300 s; an unknown kid refetches at most every 30 s.
    auth.authenticate(bearer(rsa_key.sign(claims())))
    clock.now = NOW + 299.9
    auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 1
    clock.now = NOW + 300
    auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 2
    stranger = SigningKey.rsa(kid="stranger").sign(claims())
    clock.now = NOW + 300 + 29.9
    reject(auth, stranger)
    assert server.request_count == 2
    clock.now = NOW + 300 + 30
    reject(auth, stranger)
    assert server.request_count == 3


def test_cache_settings_reach_the_key_cache(
    make_auth: Any, server: JwksServer, rsa_key: SigningKey, clock: FakeClock
) -> None:
    auth = make_auth(jwks_cache_ttl_s=60, min_refresh_interval_s=5)
    auth.authenticate(bearer(rsa_key.sign(claims())))
    clock.now = NOW + 60
    auth.authenticate(bearer(rsa_key.sign(claims())))
    assert server.request_count == 2
    clock.now = NOW + 65
    reject(auth, SigningKey.rsa(kid="stranger").sign(claims()))
    assert server.request_count == 3


def test_unknown_kid_logs_its_reason(
    auth: Authenticator, rsa_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="shared.api.auth"):
        reject(auth, rsa_key.with_kid("stranger").sign(claims()))
    assert [r.getMessage() for r in caplog.records if r.name == "shared.api.auth"] == [
        "auth rejected: no JWKS key for kid"
    ]
