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

JWKS cache policy:

- Keys are cached for ``jwks_cache_ttl_s``. The request that finds the cache stale
  refreshes it; concurrent requests keep using the stale key rather than queue behind it.
- An unknown ``kid`` (key rotation) triggers one refetch. Every fetch *attempt* is
  rate-limited to one per ``min_refresh_interval_s``, so a caller spraying random kids
  costs the JWKS endpoint at most one request per interval per instance.
- A token without ``kid`` is accepted only when the set holds exactly one usable key.
- Failure policy: when the JWKS cannot be fetched (network error, non-200, oversized
  or unusable document) the previous keys stay in use, however old. With nothing
  cached the request gets ``Unauthenticated`` (401), never a 500 or 503: without keys
  we cannot tell a real token from a forged one, the SPEC's error table files every
  token-verification failure under 401, and a 503 would invite every client to retry
  into an identity-provider outage. The outage is logged at WARNING for on-call, and
  with an empty cache fetches are retried at most once per second (not once per
  interval) so recovery after a cold-start blip is quick.

Messages in ``Unauthenticated`` are fixed strings safe for clients; no part of the
token is ever echoed. The reason for a rejection is logged at DEBUG.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.errors import Forbidden, Unauthenticated

if TYPE_CHECKING:
    import httpx

    from shared.config import Settings

__all__ = [
    "MIN_HS256_SECRET_BYTES",
    "SUBJECT_MAX_CHARS",
    "SUBJECT_PATTERN",
    "Authenticator",
    "Principal",
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
# Real JWKS documents are a few KiB; the cap bounds memory if the endpoint misbehaves.
_MAX_JWKS_BYTES = 256 * 1024
# RFC 7518 §3.2: an HS256 key shorter than the hash output weakens the MAC.
MIN_HS256_SECRET_BYTES = 32
# NIST SP 800-131A: RSA below 2048 bits is disallowed for signatures.
_MIN_RSA_BITS = 2048
# With no key cached every request fails anyway, so retry the JWKS sooner than the
# normal refresh interval — but still not once per request.
_EMPTY_CACHE_RETRY_S = 1.0
# A JWKS fetch happens inside a request; keep it well under the request deadline
# (connect, then every other operation). httpx is imported on the first fetch: a
# development instance (HS256) never needs it, and cold starts pay for every import.
_JWKS_CONNECT_TIMEOUT_S = 2.0
_JWKS_TIMEOUT_S = 5.0
# httpx timeouts are per operation; this bounds a body that trickles in slowly.
_JWKS_DEADLINE_S = 10.0

_JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})

_MSG_MISSING = "Missing bearer token."
_MSG_SCHEME = "Authorization header must be 'Bearer <token>'."
_MSG_EXPIRED = "Token has expired."
_MSG_INVALID = "Invalid token."


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: ``user_id`` is the token's ``sub``."""

    user_id: str
    is_admin: bool


@dataclass(frozen=True, slots=True)
class _JwksKey:
    kid: str | None
    alg: str
    jwk: jwt.PyJWK


@dataclass(frozen=True, slots=True)
class _JwksSnapshot:
    """An immutable view of one successful fetch; replaced whole, never mutated."""

    keys: tuple[_JwksKey, ...]
    fetched_at: float

    def find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is None:
            only = self.keys[0] if len(self.keys) == 1 else None
            return only.jwk if only is not None and only.alg == alg else None
        for key in self.keys:
            if key.kid == kid and key.alg == alg:
                return key.jwk
        return None


def _reject(reason: str, message: str = _MSG_INVALID) -> Unauthenticated:
    logger.debug("auth rejected: %s", reason)
    return Unauthenticated(message)


def _elapsed_at_least(now: float, since: float, seconds: float) -> bool:
    """True when ``seconds`` have passed; a clock that jumped backwards counts as passed."""
    elapsed = now - since
    return elapsed < 0 or elapsed >= seconds


class Authenticator:
    """Verifies bearer JWTs against a JWKS URL and/or an HS256 secret (see module doc).

    Thread-safe: one instance serves every request of a process. ``http`` is an
    optional client (tests inject one); otherwise one is created on first JWKS fetch
    and reused. ``clock`` returns Unix seconds and drives both the token time claims
    and the cache.
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
        self._jwks_url = jwks_url or None
        self._issuer = issuer or None
        self._audience = audience or None
        self._hs256_key = hs256_secret.encode() if hs256_secret else None
        self._leeway_s = leeway_s
        self._ttl_s = jwks_cache_ttl_s
        self._min_refresh_s = min_refresh_interval_s
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        # Readers take ``_snapshot`` without a lock (a reference read is atomic and the
        # snapshot is immutable). ``_fetch_lock`` serialises fetches and guards
        # ``_last_attempt_at`` and the lazy client, so concurrent misses cause one fetch.
        self._snapshot: _JwksSnapshot | None = None
        self._last_attempt_at: float | None = None
        self._fetch_lock = threading.Lock()

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
        """Close the HTTP client if this instance created it."""
        with self._fetch_lock:
            if self._owns_http and self._http is not None:
                self._http.close()
                self._http = None

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization`` header value; raises ``Unauthenticated``."""
        token = _bearer_token(authorization)
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
        elif alg in _JWKS_ALGORITHMS and self._jwks_url is not None:
            key = self._jwks_key(kid, alg)
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

    # -- JWKS -------------------------------------------------------------------------

    def _jwks_key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        snapshot = self._snapshot
        key = snapshot.find(kid, alg) if snapshot is not None else None
        if key is not None and snapshot is not None:
            if not _elapsed_at_least(self._clock(), snapshot.fetched_at, self._ttl_s):
                return key
            # Stale but known: refresh if nobody else is, otherwise don't queue behind them.
            if not self._fetch_lock.acquire(blocking=False):
                return key
        else:
            # Unknown kid (or nothing cached): wait for any fetch in flight — it may be
            # bringing exactly this key after a rotation.
            self._fetch_lock.acquire()
        try:
            self._refresh_locked()
        finally:
            self._fetch_lock.release()
        snapshot = self._snapshot
        return snapshot.find(kid, alg) if snapshot is not None else None

    def _refresh_locked(self) -> None:
        """Fetch the JWKS unless rate-limited. Caller holds ``_fetch_lock``."""
        interval = self._min_refresh_s
        if self._snapshot is None:
            interval = min(interval, _EMPTY_CACHE_RETRY_S)
        if self._last_attempt_at is not None and not _elapsed_at_least(
            self._clock(), self._last_attempt_at, interval
        ):
            return
        keys = self._fetch_keys()
        # Measured from the end of the attempt: threads that queued behind a slow or
        # hanging fetch must not each start another one the moment they get the lock.
        self._last_attempt_at = self._clock()
        if keys:
            self._snapshot = _JwksSnapshot(keys=keys, fetched_at=self._last_attempt_at)

    def _fetch_keys(self) -> tuple[_JwksKey, ...] | None:
        """The usable keys of the JWKS document, or None (logged) when there are none."""
        url = self._jwks_url
        if url is None:  # pragma: no cover - only called in JWKS mode
            return None
        import httpx

        if self._http is None:
            self._http = httpx.Client(
                timeout=httpx.Timeout(_JWKS_TIMEOUT_S, connect=_JWKS_CONNECT_TIMEOUT_S),
                follow_redirects=False,
            )
        deadline = time.monotonic() + _JWKS_DEADLINE_S
        try:
            with self._http.stream("GET", url, headers={"Accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    logger.warning("JWKS fetch failed: %s answered %d", url, resp.status_code)
                    return None
                body = bytearray()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_JWKS_BYTES:
                        logger.warning("JWKS fetch failed: %s exceeds %d bytes", url, len(body))
                        return None
                    if time.monotonic() > deadline:
                        logger.warning("JWKS fetch failed: %s too slow", url)
                        return None
            document = json.loads(body)
        except httpx.HTTPError as exc:
            logger.warning("JWKS fetch failed: %s: %s", url, type(exc).__name__)
            return None
        except (ValueError, RecursionError):
            logger.warning("JWKS fetch failed: %s did not return JSON", url)
            return None
        keys = _parse_jwks(document)
        if not keys:
            # Treated as a failed fetch: a broken response must not lock every user out.
            logger.warning("JWKS fetch failed: %s holds no usable RS256/ES256 key", url)
            return None
        return keys


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


def _parse_jwks(document: Any) -> tuple[_JwksKey, ...]:
    """Keys we may verify with, each bound to the one algorithm its type allows."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return ()
    keys: list[_JwksKey] = []
    for entry in entries:
        key = _parse_jwk(entry)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _parse_jwk(entry: Any) -> _JwksKey | None:
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    if entry.get("use") not in (None, "sig"):
        return None
    kty = entry.get("kty")
    if kty == "RSA":
        alg = "RS256"
    elif kty == "EC" and entry.get("crv") == "P-256":
        alg = "ES256"
    else:
        return None  # includes "oct": a published HMAC key must never verify anything
    if entry.get("alg") not in (None, alg):
        return None
    if "d" in entry:
        logger.warning("JWKS key %r holds private material; ignored", kid)
        return None
    try:
        jwk = jwt.PyJWK(entry, algorithm=alg)
    except jwt.PyJWTError:
        logger.warning("JWKS key %r could not be loaded; ignored", kid)
        return None
    public = jwk.key
    if alg == "RS256":
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < _MIN_RSA_BITS:
            return None
    elif not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(
        public.curve, ec.SECP256R1
    ):
        return None
    return _JwksKey(kid=kid, alg=alg, jwk=jwk)


def require_admin(principal: Principal) -> None:
    """Raise ``Forbidden`` unless the principal carries ``role: "admin"``."""
    if not principal.is_admin:
        raise Forbidden("Admin role required.")
