"""QStash request signatures: minting them (local queue, tests) and verifying them (worker).

A signature is the ``Upstash-Signature`` header: an HS256 JWT with ``iss`` "Upstash",
``sub`` the exact destination URL, ``exp``/``nbf``/``iat``/``jti``, and ``body`` the
unpadded base64url SHA-256 of the raw request body. Verification goes through the SDK's
``Receiver`` so the worker accepts exactly what real QStash sends.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time

import jwt
from qstash import Receiver
from qstash.errors import SignatureError

from shared.errors import Unauthenticated

__all__ = ["SignatureVerifier", "body_hash", "sign_qstash"]

logger = logging.getLogger("reel.queue")

# QStash's own tokens live five minutes; retries are re-signed, so this bounds only one attempt.
DEFAULT_TTL_S = 300


def body_hash(body: bytes) -> str:
    """The ``body`` claim: base64url(sha256(body)) without padding."""
    digest = hashlib.sha256(body).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def sign_qstash(
    body: bytes, url: str, signing_key: str, *, now: int | None = None, ttl_s: int = DEFAULT_TTL_S
) -> str:
    """An ``Upstash-Signature`` value for ``body`` sent to ``url``, shaped like QStash's own.

    ``now`` (unix seconds) is injectable so tests can mint expired or future tokens.
    """
    issued_at = int(time.time()) if now is None else now
    claims = {
        "iss": "Upstash",
        "sub": url,
        "exp": issued_at + ttl_s,
        "nbf": issued_at,
        "iat": issued_at,
        "jti": f"jwt_{secrets.token_hex(16)}",
        "body": body_hash(body),
    }
    return jwt.encode(claims, signing_key, algorithm="HS256")


class SignatureVerifier:
    """Checks ``Upstash-Signature`` against the current key, then the next (key rotation)."""

    def __init__(self, current_key: str, next_key: str, *, clock_tolerance_s: int = 5) -> None:
        if not current_key or not next_key:
            raise ValueError("both QStash signing keys are required")
        self._receiver = Receiver(current_signing_key=current_key, next_signing_key=next_key)
        self._clock_tolerance_s = clock_tolerance_s

    def verify(self, signature: str | None, body: bytes, url: str) -> None:
        """Raise ``Unauthenticated`` unless ``signature`` is valid for the raw ``body`` at ``url``.

        ``url`` must be the exact URL the sender signed (scheme, host, path). The SDK wants
        the body as ``str``: a body that is not UTF-8 cannot have been signed by QStash's
        JSON publisher and is rejected before the SDK sees it. Note: qstash 3.4.0 hands
        ``clock_tolerance`` to PyJWT where PyJWT ignores it, so a token whose ``iat``/``nbf``
        is ahead of our clock is refused today (QStash then retries the delivery).
        """
        if not signature:
            raise Unauthenticated("Missing Upstash-Signature.")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Unauthenticated("Invalid Upstash-Signature.") from exc
        try:
            self._receiver.verify(
                signature=signature, body=text, url=url, clock_tolerance=self._clock_tolerance_s
            )
        # The SDK raises SignatureError for JWT problems but indexes claims it does not
        # require ("body"), so a well-signed token with odd claims surfaces as these.
        except (SignatureError, KeyError, TypeError, AttributeError, ValueError) as exc:
            # The SDK's reasons name claims, hashes and the subject URL, never key or body.
            logger.info("qstash signature rejected: %s: %s", type(exc).__name__, exc)
            raise Unauthenticated("Invalid Upstash-Signature.") from exc
