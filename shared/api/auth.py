"""Bearer-token authentication (SPEC §3 "Auth").

``Authenticator.authenticate(header)`` turns an ``Authorization`` header into a
``Principal`` or raises ``Unauthenticated``; ``require_admin`` raises ``Forbidden``.

Key sources and the algorithm each one may verify. The token's ``alg`` header only
*selects* among these; it can never widen them (no ``none``, no HS256 against a JWKS
public key, no RS256 against the HMAC secret)::

    JWKS URL (production)      RS256 <- RSA keys (>= 2048 bits)
                               ES256 <- EC P-256 keys
                               anything else in the set (``oct``, ``OKP``, P-384, …)
                               is ignored, so the set cannot smuggle in an HMAC key
    HS256 secret (development) HS256 <- the configured secret (>= 32 bytes)

Both may be configured in development; production never has an HS256 secret
(``shared.config`` refuses one, and ``from_settings`` drops it regardless).

The JWKS is fetched and cached by ``shared.api.jwks.JwksCache`` (its module doc holds
the cache and failure policy): a token whose key it cannot find is ``Unauthenticated``
(401), also while the identity provider is down with nothing cached.

Messages in ``Unauthenticated`` are fixed strings safe for clients; no part of the
token is ever echoed. The reason for a rejection is logged at DEBUG.

PyJWT (and through it ``cryptography``) is imported when there is a token to read: a
request without one is refused by a cold instance without loading either.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.api.jwks import JWKS_ALGORITHMS, JwksCache
from shared.config import MIN_HS256_SECRET_BYTES
from shared.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    import httpx
    import jwt

    from shared.bootstrap import Container
    from shared.config import Settings

__all__ = [
    "SUBJECT_MAX_CHARS",
    "SUBJECT_PATTERN",
    "Authenticator",
    "Principal",
    "authenticator_of",
    "is_valid_subject",
    "require_admin",
]

logger = logging.getLogger(__name__)

# A sub is whatever the identity provider issues ("auth0|abc", "google-oauth2|1234",
# "samlp|okta|a@b.example", base64 ids with "+/="): Redis keys encode it (shared/redis/
# keys.py), rows and logs quote it. What is refused cannot be shown or compared safely:
# whitespace, control and other invisible characters. 128 is users.id's column bound.
SUBJECT_MAX_CHARS = 128
SUBJECT_PATTERN = rf"^[^\s\x00-\x1f\x7f-\x9f]{{1,{SUBJECT_MAX_CHARS}}}$"
"""The sub rule as a regex (JSON Schema / pydantic ``pattern``); ``is_valid_subject`` also
refuses the remaining non-printable characters (format, unassigned, surrogates)."""
_SUBJECT_RE = re.compile(SUBJECT_PATTERN)


def is_valid_subject(value: str) -> bool:
    """True when ``value`` may be a user id: 1-128 printable, non-whitespace characters."""
    return bool(_SUBJECT_RE.fullmatch(value)) and value.isprintable()


# Firebase ID tokens are ~1 KiB; the cap bounds the parsing work a hostile header costs.
_MAX_TOKEN_CHARS = 8192

_MSG_MISSING = "Missing bearer token."
_MSG_SCHEME = "Authorization header must be 'Bearer <token>'."
_MSG_EXPIRED = "Token has expired."
_MSG_INVALID = "Invalid token."


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: ``user_id`` is the token's ``sub``."""

    user_id: str
    is_admin: bool


def _reject(reason: str, message: str = _MSG_INVALID) -> Unauthenticated:
    logger.debug("auth rejected: %s", reason)
    return Unauthenticated(message)


class Authenticator:
    """Verifies bearer JWTs against a JWKS URL and/or an HS256 secret (see module doc).

    Thread-safe: one instance serves every request of a process. ``http`` is an
    optional client for the JWKS fetches (tests inject one). ``clock`` returns Unix
    seconds and drives both the token time claims and the JWKS cache.
    """

    def __init__(
        self,
        *,
        jwks_url: str | None,
        issuer: str | None,
        audience: str | None,
        hs256_secret: str | None,
        leeway_s: int = 30,
        jwks_cache_ttl_s: int = 300,
        min_refresh_interval_s: float = 30.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not jwks_url and not hs256_secret:
            raise ValueError("Authenticator needs a JWKS URL or an HS256 secret")
        if hs256_secret and len(hs256_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(f"HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
        if leeway_s < 0 or jwks_cache_ttl_s <= 0 or min_refresh_interval_s < 0:
            raise ValueError("leeway_s and min_refresh_interval_s must be >= 0, ttl > 0")
        self._issuer = issuer or None
        self._audience = audience or None
        self._hs256_key = hs256_secret.encode() if hs256_secret else None
        self._leeway_s = leeway_s
        self._clock = clock
        self._jwks = (
            JwksCache(
                jwks_url,
                ttl_s=jwks_cache_ttl_s,
                min_refresh_interval_s=min_refresh_interval_s,
                http=http,
                clock=clock,
            )
            if jwks_url
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """The authenticator for this deployment (SPEC §6 ``AUTH_*`` variables).

        Raises ``ValueError`` for a configuration that could never verify safely: a
        JWKS URL in production that is neither https nor loopback, or an HS256 secret
        shorter than 32 bytes.
        """
        from shared.config import is_safe_transport

        if settings.is_production:
            # shared.config already refuses AUTH_HS256_SECRET in production; HS256 must
            # never be accepted there even if a Settings object was built by hand.
            if not settings.auth_jwks_url or not is_safe_transport(settings.auth_jwks_url):
                raise ValueError(
                    "AUTH_JWKS_URL: an https:// (or loopback http://) URL is required in production"
                )
            hs256_secret = None
        else:
            hs256_secret = settings.effective_hs256_secret
        return cls(
            jwks_url=settings.auth_jwks_url,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            hs256_secret=hs256_secret,
        )

    def close(self) -> None:
        """Close the JWKS cache's HTTP client if it created one."""
        if self._jwks is not None:
            self._jwks.close()

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization`` header value; raises ``Unauthenticated``."""
        token = _bearer_token(authorization)
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, RecursionError) as exc:
            raise _reject(f"unreadable header ({type(exc).__name__})") from None

        alg = header.get("alg")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _reject("kid is not a string")
        key: jwt.PyJWK | bytes | None
        if alg == "HS256" and self._hs256_key is not None:
            key = self._hs256_key
        elif alg in JWKS_ALGORITHMS and self._jwks is not None:
            key = self._jwks.key(kid, alg)
            if key is None:
                raise _reject("no JWKS key for kid")
        else:
            raise _reject(f"algorithm not accepted: {str(alg)[:16]!r}")

        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                # Time claims are checked below against the injected clock.
                options={
                    "require": ["exp", "sub"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except (jwt.PyJWTError, RecursionError) as exc:
            raise _reject(f"verification failed ({type(exc).__name__})") from None

        self._check_time_claims(claims)
        sub = claims["sub"]
        if not isinstance(sub, str) or not is_valid_subject(sub):
            raise _reject("sub outside the allowed charset or length")
        return Principal(user_id=sub, is_admin=claims.get("role") == "admin")

    def _check_time_claims(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise _reject("exp missing")
        if exp <= now - self._leeway_s:
            raise _reject("expired", _MSG_EXPIRED)
        for name in ("nbf", "iat"):
            value = _numeric_date(claims, name)
            if value is not None and value > now + self._leeway_s:
                raise _reject(f"{name} in the future")


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise _reject("no Authorization header", _MSG_MISSING)
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise _reject("not a Bearer credential", _MSG_SCHEME)
    token = parts[1]
    if len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        raise _reject("token too long or not ASCII")
    return token


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2), None if absent; present but malformed rejects."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _reject(f"{name} is not a NumericDate")
    return float(value)


def require_admin(principal: Principal) -> None:
    """Raise ``Forbidden`` unless the principal carries ``role: "admin"``."""
    if not principal.is_admin:
        raise Forbidden("Admin role required.")


def authenticator_of(container: Container) -> Authenticator:
    """The container's authenticator (one per instance, built on first use unless the
    container was given one): the edge adds it, the composition root knows no edge."""
    return container.provide(
        "authenticator", lambda: Authenticator.from_settings(container.settings)
    )
