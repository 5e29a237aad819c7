"""Which keys of a JWKS document may verify anything (``shared.api.jwks.parse_jwks``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devtools.jwks_server import SigningKey, jwks
from shared.api.jwks import parse_jwks

RSA = SigningKey.rsa(kid="rsa-1")
EC = SigningKey.ec(kid="ec-1")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_rsa_and_p256_keys_are_bound_to_their_one_algorithm() -> None:
    keys = parse_jwks(jwks([RSA, EC]))
    assert [(k.kid, k.alg) for k in keys] == [("rsa-1", "RS256"), ("ec-1", "ES256")]


def test_keys_without_kid_or_declared_alg_are_kept() -> None:
    jwk = RSA.with_kid(None).public_jwk()
    del jwk["alg"], jwk["use"]
    assert [(k.kid, k.alg) for k in parse_jwks({"keys": [jwk]})] == [(None, "RS256")]


def _p384_jwk() -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True
    )
    return jwk


def _private_jwk() -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private, as_dict=True)
    return {**jwk, "kid": "leaked", "use": "sig", "alg": "RS256"}


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"kty": "oct", "kid": "o", "k": b64(b"x" * 32)}, id="hmac"),
        pytest.param({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": b64(b"x" * 32)}, id="okp"),
        pytest.param(_p384_jwk(), id="p384"),
        pytest.param(RSA.public_jwk(alg="RS512"), id="declared-other-alg"),
        pytest.param(RSA.public_jwk(use="enc"), id="encryption-key"),
        pytest.param(RSA.public_jwk(kid=7), id="kid-not-a-string"),
        pytest.param(SigningKey.rsa(kid="small", bits=1024).public_jwk(), id="rsa-1024"),
        pytest.param(_private_jwk(), id="private-material"),
        pytest.param({"kty": "RSA", "kid": "junk", "n": "!!", "e": "AQAB"}, id="unloadable"),
        pytest.param("not-a-dict", id="not-an-object"),
    ],
)
def test_unusable_entries_are_ignored(entry: Any) -> None:
    keys = parse_jwks({"keys": [entry, EC.public_jwk()]})
    assert [(k.kid, k.alg) for k in keys] == [("ec-1", "ES256")]


@pytest.mark.parametrize("document", [None, [], "keys", {"keys": "nope"}, {"no": []}])
def test_a_document_without_a_key_list_has_no_keys(document: Any) -> None:
    assert parse_jwks(document) == ()


def test_a_published_private_key_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="shared.api.jwks"):
        assert parse_jwks({"keys": [_private_jwk()]}) == ()
    assert "private material" in caplog.text
