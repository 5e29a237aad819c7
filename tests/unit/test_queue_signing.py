"""Upstash-Signature: minted by sign_qstash, verified by SignatureVerifier (PyJWT, a 60 s
clock leeway on a pinned clock, each token once)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging

import jwt
import pytest

from devtools.qstash_signing import TEST_CURRENT_KEY, TEST_NEXT_KEY, MemoryTokenLedger
from shared.errors import Unauthenticated
from shared.queue import SignatureVerifier, sign_qstash
from shared.queue.signing import (
    CLOCK_LEEWAY_S,
    DEFAULT_TTL_S,
    REQUIRED_CLAIMS,
    DeferredTokenLedger,
    TokenLedger,
    body_hash,
)

URL = "https://worker.example.test/worker/generate"
BODY = b'{"generation_id":"g1","lease_id":"g1","request_id":"r1","user_id":"u1"}'
OTHER_KEY = "sig_some_other_key_" + "o" * 45
NOW = 1_700_000_000  # the verifier's pinned clock


@pytest.fixture
def verifier() -> SignatureVerifier:
    return SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY, clock=lambda: NOW)


def _sign(body: bytes = BODY, url: str = URL, key: str = TEST_CURRENT_KEY, at: int = NOW) -> str:
    return sign_qstash(body, url, key, now=at)


def test_token_has_qstash_claims() -> None:
    token = sign_qstash(BODY, URL, TEST_CURRENT_KEY, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert claims["iss"] == "Upstash"
    assert claims["sub"] == URL
    assert claims["iat"] == claims["nbf"] == 1_700_000_000
    assert claims["exp"] == 1_700_000_300
    assert claims["jti"]
    expected = base64.urlsafe_b64encode(hashlib.sha256(BODY).digest()).decode().rstrip("=")
    assert claims["body"] == expected == body_hash(BODY)
    assert "=" not in claims["body"]


def test_valid_current_key_passes(verifier: SignatureVerifier) -> None:
    verifier.verify(_sign(), BODY, URL)


def test_valid_next_key_passes(verifier: SignatureVerifier) -> None:
    verifier.verify(_sign(key=TEST_NEXT_KEY), BODY, URL)


@pytest.mark.parametrize("skew_s", [1, 3, CLOCK_LEEWAY_S - 1, -(CLOCK_LEEWAY_S - 1)])
def test_small_clock_skew_is_tolerated(verifier: SignatureVerifier, skew_s: int) -> None:
    """QStash's clock ``skew_s`` ahead of ours: iat/nbf in our future (positive), or a
    token whose exp passed ``-skew_s`` seconds ago by our clock (negative)."""
    issued = NOW + skew_s if skew_s > 0 else NOW - DEFAULT_TTL_S + skew_s
    verifier.verify(_sign(at=issued), BODY, URL)


@pytest.mark.parametrize(
    "issued",
    [NOW + CLOCK_LEEWAY_S + 1, NOW - DEFAULT_TTL_S - CLOCK_LEEWAY_S - 1],
    ids=["61s-ahead", "expired-61s-ago"],
)
def test_skew_beyond_the_leeway_is_refused(verifier: SignatureVerifier, issued: int) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(_sign(at=issued), BODY, URL)


def test_a_token_is_accepted_once_for_its_remaining_life() -> None:
    ledger = MemoryTokenLedger()
    verifier = SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY, ledger=ledger, clock=lambda: NOW)
    token = _sign(at=NOW - 100)
    verifier.verify(token, BODY, URL)
    with pytest.raises(Unauthenticated):
        verifier.verify(token, BODY, URL)
    # Remembered until it could no longer pass anyway: exp + leeway, from now.
    assert list(ledger.ttls.values()) == [DEFAULT_TTL_S - 100 + CLOCK_LEEWAY_S]
    verifier.verify(_sign(), BODY, URL)  # a redelivery carries a fresh token: accepted


def test_a_refused_token_is_not_remembered() -> None:
    ledger = MemoryTokenLedger()
    verifier = SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY, ledger=ledger, clock=lambda: NOW)
    with pytest.raises(Unauthenticated):
        verifier.verify(_sign(), BODY + b" ", URL)
    assert ledger.ttls == {}


def test_a_deferred_check_leaves_the_token_to_its_caller(caplog: pytest.LogCaptureFixture) -> None:
    """The worker's job route: every check but the replay one; the use comes back to be
    recorded by the job's first script call, or by ``record()`` (the same ledger)."""
    caplog.set_level(logging.INFO, logger="reel.queue")
    ledger = MemoryTokenLedger()
    verifier = SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY, ledger=ledger, clock=lambda: NOW)
    token = _sign(at=NOW - 100)

    use = verifier.verify_deferred(token, BODY, URL)

    assert ledger.ttls == {}  # nothing recorded yet
    assert use.token_id == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert use.ttl_s == DEFAULT_TTL_S - 100 + CLOCK_LEEWAY_S
    use.record()
    with pytest.raises(Unauthenticated) as again:
        use.record()
    with pytest.raises(Unauthenticated) as direct:
        verifier.verify(token, BODY, URL)
    # Refused exactly as verify refuses a replay: same error, same logged reason.
    assert str(again.value) == str(direct.value) == str(use.refused())
    assert caplog.text.count("qstash signature rejected: token replayed") == 3


def test_a_deferred_check_still_refuses_a_bad_signature() -> None:
    ledger = MemoryTokenLedger()
    verifier = SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY, ledger=ledger, clock=lambda: NOW)
    with pytest.raises(Unauthenticated):
        verifier.verify_deferred(_sign(key=OTHER_KEY), BODY, URL)
    with pytest.raises(ValueError, match="ledger"):
        SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY).verify_deferred(_sign(), BODY, URL)


def test_a_deferred_ledger_is_asked_for_only_when_a_use_is_recorded() -> None:
    """The container's verifier: refused requests (no, forged or replayed-before-check
    tokens) never build the Redis-backed ledger; each recorded use asks for it."""
    ledger = MemoryTokenLedger()
    asked: list[TokenLedger] = []

    def build() -> TokenLedger:
        asked.append(ledger)
        return ledger

    verifier = SignatureVerifier(
        TEST_CURRENT_KEY, TEST_NEXT_KEY, ledger=DeferredTokenLedger(build), clock=lambda: NOW
    )
    for signature, body in ((None, BODY), ("not.a.jwt", BODY), (_sign(key=OTHER_KEY), BODY),
                            (_sign(), BODY + b" ")):  # fmt: skip
        with pytest.raises(Unauthenticated):
            verifier.verify(signature, body, URL)
    use = verifier.verify_deferred(_sign(), BODY, URL)
    assert asked == []
    use.record()
    token = _sign()
    verifier.verify(token, BODY, URL)
    with pytest.raises(Unauthenticated):
        verifier.verify(token, BODY, URL)  # replay refused through the same ledger
    assert len(asked) == 3
    assert len(ledger.ttls) == 2


def test_padded_body_claim_is_accepted(verifier: SignatureVerifier) -> None:
    padded = base64.urlsafe_b64encode(hashlib.sha256(BODY).digest()).decode()
    assert padded.endswith("=")
    verifier.verify(_encode(_claims(body=padded)), BODY, URL)


def test_signature_covers_the_raw_bytes(verifier: SignatureVerifier) -> None:
    """Not only UTF-8: the body claim hashes bytes (the job parser refuses non-JSON)."""
    verifier.verify(_sign(b"\xff\xfe"), b"\xff\xfe", URL)


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": "Upstash",
        "sub": URL,
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "jwt_x",
        "body": body_hash(BODY),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _encode(claims: dict[str, object], key: str = TEST_CURRENT_KEY, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_every_claim_is_required(verifier: SignatureVerifier, claim: str) -> None:
    verifier.verify(_encode(_claims()), BODY, URL)
    with pytest.raises(Unauthenticated):
        verifier.verify(_encode(_claims(**{claim: None})), BODY, URL)


@pytest.mark.parametrize(
    ("signature", "body", "url"),
    [
        pytest.param(_sign(key=OTHER_KEY), BODY, URL, id="wrong-key"),
        pytest.param(_sign(at=NOW - 3600), BODY, URL, id="expired"),
        pytest.param(_sign(at=NOW + 3600), BODY, URL, id="not-yet-valid"),
        pytest.param(_sign(), BODY.replace(b"u1", b"u2"), URL, id="tampered"),
        pytest.param(_sign(), BODY, "https://worker.example.test/worker/failed", id="url-mismatch"),
        pytest.param(_sign(url=URL + "?x=1"), BODY, URL, id="url-with-query"),
        pytest.param(_encode(_claims(body=body_hash(b"other"))), BODY, URL, id="wrong-body-hash"),
        pytest.param(None, BODY, URL, id="missing"),
        pytest.param("", BODY, URL, id="empty"),
        pytest.param("not.a.jwt", BODY, URL, id="garbage"),
        pytest.param("🙂", BODY, URL, id="non-ascii-garbage"),
        pytest.param(_encode(_claims(iss="Someone")), BODY, URL, id="wrong-issuer"),
        pytest.param(_encode(_claims(body=12345)), BODY, URL, id="non-string-body-claim"),
        pytest.param(_encode(_claims(exp="soon")), BODY, URL, id="non-numeric-exp"),
        pytest.param(_encode(_claims(iat=True)), BODY, URL, id="boolean-iat"),
        pytest.param(_encode(_claims(jti="")), BODY, URL, id="empty-jti"),
        pytest.param(_encode(_claims(jti="j" * 201)), BODY, URL, id="overlong-jti"),
        pytest.param(_encode(_claims(), alg="HS512"), BODY, URL, id="HS512"),
        pytest.param(_encode(_claims(), alg="HS384"), BODY, URL, id="HS384"),
        pytest.param(jwt.encode(_claims(), None, algorithm="none"), BODY, URL, id="alg-none"),
    ],
)
def test_bad_signatures_are_unauthenticated(
    verifier: SignatureVerifier, signature: str | None, body: bytes, url: str
) -> None:
    with pytest.raises(Unauthenticated):
        verifier.verify(signature, body, url)


def test_verifier_needs_both_keys() -> None:
    with pytest.raises(ValueError):
        SignatureVerifier(TEST_CURRENT_KEY, "")


def test_signed_json_body_is_what_qstash_would_hash(verifier: SignatureVerifier) -> None:
    body = json.dumps({"brief": "café ☕"}).encode()
    verifier.verify(_sign(body), body, URL)
