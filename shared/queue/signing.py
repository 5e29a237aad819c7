"""QStash request signatures: minting them (local queue, tests) and verifying them (worker).

A signature is the ``Upstash-Signature`` header: an HS256 JWT with ``iss`` "Upstash",
``sub`` the exact destination URL, ``exp``/``nbf``/``iat``/``jti``, and ``body`` the
unpadded base64url SHA-256 of the raw request body. We verify it ourselves with PyJWT
rather than through the SDK's ``Receiver``, which ignores its clock tolerance (qstash
3.4.0): there any skew between QStash's clock and ours cost a 401 and a retry. Times are
checked with a leeway against an injected clock, and a token is accepted once: its
``jti`` is remembered for the rest of the token's life (QStash re-signs every delivery
attempt, so only a replay presents a ``jti`` twice).

``verify`` remembers the ``jti`` itself (one ``SET NX``). The job route calls
``verify_deferred`` instead and gets the ``TokenUse`` back: the worker records it in the
job's first Redis script call (``lua/refresh_lease.lua``), so verifying a delivery costs
no round trip of its own, and falls back to ``TokenUse.record`` (the same ``SET NX``) on
the paths that write before any script call or make none.

A request with no signature is refused before PyJWT is imported, and the container's
ledger (``DeferredTokenLedger``) builds the Redis client only when a token's use is
recorded: a cold instance refusing an unsigned request loads neither, a forged one only
PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from shared.errors import Unauthenticated

if TYPE_CHECKING:
    from shared.redis.client import RedisPort
    from shared.redis.keys import Keys

__all__ = [
    "CLOCK_LEEWAY_S",
    "DeferredTokenLedger",
    "RedisTokenLedger",
    "SignatureVerifier",
    "TokenLedger",
    "TokenUse",
    "body_hash",
    "sign_qstash",
]

logger = logging.getLogger("reel.queue")

# QStash's own tokens live five minutes; retries are re-signed, so this bounds only one attempt.
DEFAULT_TTL_S = 300
CLOCK_LEEWAY_S: Final = 60
"""Skew tolerated between QStash's clock and ours, on ``exp``, ``nbf`` and ``iat``."""
ISSUER: Final = "Upstash"
REQUIRED_CLAIMS: Final = ("iss", "sub", "exp", "nbf", "iat", "jti", "body")
JTI_MAX_CHARS: Final = 200  # QStash's are ~30; the jti becomes part of a Redis key


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
    import jwt

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


class TokenLedger(Protocol):
    """Remembers token ids, so each signed token is accepted once."""

    def first_use(self, token_id: str, ttl_s: int) -> bool:
        """True the first time ``token_id`` is seen within ``ttl_s`` seconds, else False."""
        ...


class RedisTokenLedger:
    """``TokenLedger`` in Redis: one ``SET NX`` with the token's remaining life as TTL."""

    def __init__(self, redis: RedisPort, keys: Keys) -> None:
        self._redis, self._keys = redis, keys

    def first_use(self, token_id: str, ttl_s: int) -> bool:
        return self._redis.set_nx(self._keys.qstash_token(token_id), "1", px_ms=ttl_s * 1000)


class DeferredTokenLedger:
    """A ``TokenLedger`` that asks ``ledger()`` for the real one at each use (the container
    builds it once): a verifier holding it builds nothing for requests it refuses."""

    def __init__(self, ledger: Callable[[], TokenLedger]) -> None:
        self._ledger = ledger

    def first_use(self, token_id: str, ttl_s: int) -> bool:
        return self._ledger().first_use(token_id, ttl_s)


@dataclass(frozen=True, slots=True)
class TokenUse:
    """A verified token whose one use is not recorded yet (``verify_deferred``).

    Until it is, the request is not authenticated: record it before anything is written,
    either in the caller's first Redis script call (``token_id`` remembered for
    ``ttl_s``; a token seen before makes the caller ``raise use.refused()``) or with
    ``record()``.
    """

    token_id: str
    ttl_s: int
    ledger: TokenLedger

    def record(self) -> None:
        """Remember this use on its own (one ``SET NX``); 401 if the token was used before."""
        if not self.ledger.first_use(self.token_id, self.ttl_s):
            raise self.refused()

    def refused(self) -> Unauthenticated:
        """The error of a replayed token, exactly what ``verify`` raises for one."""
        return _reject("token replayed")


def _reject(reason: str) -> Unauthenticated:
    # Reasons name claims and checks, never the key, the token or the body.
    logger.info("qstash signature rejected: %s", reason)
    return Unauthenticated("Invalid Upstash-Signature.")


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class SignatureVerifier:
    """Checks ``Upstash-Signature``: current key, then next (key rotation); times within
    ``leeway_s`` of ``clock`` (unix seconds); once per token when given a ``ledger``."""

    def __init__(
        self,
        current_key: str,
        next_key: str,
        *,
        ledger: TokenLedger | None = None,
        leeway_s: int = CLOCK_LEEWAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not current_key or not next_key:
            raise ValueError("both QStash signing keys are required")
        self._keys = (current_key, next_key)
        self._ledger = ledger
        self._leeway_s = leeway_s
        self._clock = clock

    def verify(self, signature: str | None, body: bytes, url: str) -> None:
        """Raise ``Unauthenticated`` unless ``signature`` is valid for the raw ``body`` at ``url``
        and was not presented before.

        ``url`` must be the exact URL the sender signed (scheme, host, path). A Redis
        failure while remembering the token raises ``ServiceUnavailable`` (QStash retries).
        """
        jti, ttl_s = self._check(signature, body, url)
        if self._ledger is not None and not self._ledger.first_use(jti, ttl_s):
            raise _reject("token replayed")

    def verify_deferred(self, signature: str | None, body: bytes, url: str) -> TokenUse:
        """Every check of ``verify`` but the replay check, which the caller makes with the
        returned ``TokenUse`` before it writes anything (see its docstring)."""
        if self._ledger is None:
            raise ValueError("a deferred replay check needs a token ledger")
        jti, ttl_s = self._check(signature, body, url)
        return TokenUse(jti, ttl_s, self._ledger)

    def _check(self, signature: str | None, body: bytes, url: str) -> tuple[str, int]:
        """(jti, seconds to remember it) of a valid token; raises ``Unauthenticated``."""
        if not signature:
            raise Unauthenticated("Missing Upstash-Signature.")
        claims = self._decode(signature, url)
        now = self._clock()
        exp, nbf, iat = claims["exp"], claims["nbf"], claims["iat"]
        if not (_is_time(exp) and _is_time(nbf) and _is_time(iat)):
            raise _reject("exp, nbf and iat must be numbers")
        if now > exp + self._leeway_s:
            raise _reject("expired")
        if nbf > now + self._leeway_s or iat > now + self._leeway_s:
            raise _reject("not yet valid")
        claimed = claims["body"]
        if not isinstance(claimed, str) or not hmac.compare_digest(
            claimed.rstrip("=").encode(), body_hash(body).encode()
        ):
            raise _reject("body hash mismatch")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= JTI_MAX_CHARS:
            raise _reject("jti must be a short string")
        return jti, max(1, math.ceil(exp + self._leeway_s - now))

    def _decode(self, signature: str, url: str) -> Mapping[str, Any]:
        """The claims of a token signed with either key, for ``url``, with every claim
        present; times are checked by ``verify`` against the injected clock."""
        import jwt

        for key in self._keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    signature,
                    key,
                    algorithms=["HS256"],
                    issuer=ISSUER,
                    subject=url,
                    options={
                        "require": list(REQUIRED_CLAIMS),
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
                return claims
            except jwt.InvalidSignatureError:
                continue  # the other key may have signed it (rotation)
            except jwt.PyJWTError as exc:
                raise _reject(type(exc).__name__) from exc
        raise _reject("signed with neither key")
