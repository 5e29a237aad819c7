"""Upstash-Signature: minted by sign_qstash, verified by the SDK's Receiver."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import jwt
import pytest

from shared.errors import Unauthenticated
from shared.queue import SignatureVerifier, sign_qstash
from shared.queue.signing import body_hash
from tests.support.qstash_signing import TEST_CURRENT_KEY, TEST_NEXT_KEY

URL = "https://worker.example.test/worker/generate"
BODY = b'{"generation_id":"g1","lease_id":"g1","request_id":"r1","user_id":"u1"}'
OTHER_KEY = "sig_some_other_key_" + "o" * 45


@pytest.fixture
def verifier() -> SignatureVerifier:
    return SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY)


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
    verifier.verify(sign_qstash(BODY, URL, TEST_CURRENT_KEY), BODY, URL)


def test_valid_next_key_passes(verifier: SignatureVerifier) -> None:
    verifier.verify(sign_qstash(BODY, URL, TEST_NEXT_KEY), BODY, URL)


@pytest.mark.xfail(
    strict=True,
    reason="qstash 3.4.0 Receiver passes clock_tolerance as options['leeway'], which PyJWT "
    "ignores (leeway is a decode() argument): a token dated even 1 s ahead is rejected",
)
def test_small_clock_skew_is_tolerated(verifier: SignatureVerifier) -> None:
    future = int(time.time()) + 3
    verifier.verify(sign_qstash(BODY, URL, TEST_CURRENT_KEY, now=future), BODY, URL)


def test_padded_body_claim_is_accepted(verifier: SignatureVerifier) -> None:
    now = int(time.time())
    claims = {
        "iss": "Upstash",
        "sub": URL,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "jwt_x",
        "body": base64.urlsafe_b64encode(hashlib.sha256(BODY).digest()).decode(),
    }
    verifier.verify(jwt.encode(claims, TEST_CURRENT_KEY, algorithm="HS256"), BODY, URL)


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "Upstash",
        "sub": URL,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": "jwt_x",
        "body": body_hash(BODY),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("signature", "body", "url"),
    [
        pytest.param(sign_qstash(BODY, URL, OTHER_KEY), BODY, URL, id="wrong-key"),
        pytest.param(
            sign_qstash(BODY, URL, TEST_CURRENT_KEY, now=int(time.time()) - 3600),
            BODY,
            URL,
            id="expired",
        ),
        pytest.param(
            sign_qstash(BODY, URL, TEST_CURRENT_KEY, now=int(time.time()) + 3600),
            BODY,
            URL,
            id="not-yet-valid",
        ),
        pytest.param(
            sign_qstash(BODY, URL, TEST_CURRENT_KEY), BODY.replace(b"u1", b"u2"), URL, id="tampered"
        ),
        pytest.param(
            sign_qstash(BODY, URL, TEST_CURRENT_KEY),
            BODY,
            "https://worker.example.test/worker/failed",
            id="url-mismatch",
        ),
        pytest.param(None, BODY, URL, id="missing"),
        pytest.param("", BODY, URL, id="empty"),
        pytest.param("not.a.jwt", BODY, URL, id="garbage"),
        pytest.param("🙂", BODY, URL, id="non-ascii-garbage"),
        pytest.param(
            sign_qstash(b"\xff\xfe", URL, TEST_CURRENT_KEY), b"\xff\xfe", URL, id="non-utf8"
        ),
        pytest.param(
            jwt.encode(_claims(iss="Someone"), TEST_CURRENT_KEY, algorithm="HS256"),
            BODY,
            URL,
            id="wrong-issuer",
        ),
        pytest.param(
            jwt.encode(_claims(body=None), TEST_CURRENT_KEY, algorithm="HS256"),
            BODY,
            URL,
            id="no-body-claim",
        ),
        pytest.param(
            jwt.encode(_claims(body=12345), TEST_CURRENT_KEY, algorithm="HS256"),
            BODY,
            URL,
            id="non-string-body-claim",
        ),
        pytest.param(
            jwt.encode(_claims(), TEST_CURRENT_KEY, algorithm="HS512"),
            BODY,
            URL,
            id="other-algorithm",
        ),
        pytest.param(
            jwt.encode(_claims(), None, algorithm="none"),
            BODY,
            URL,
            id="alg-none",
        ),
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


def test_signed_json_body_is_what_qstash_would_hash() -> None:
    body = json.dumps({"brief": "café ☕"}).encode()
    SignatureVerifier(TEST_CURRENT_KEY, TEST_NEXT_KEY).verify(
        sign_qstash(body, URL, TEST_CURRENT_KEY), body, URL
    )
