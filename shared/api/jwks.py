"""The identity provider's signing keys (JWKS), fetched over HTTP and cached per instance.

``JwksCache(url).key(kid, alg)`` is the verification key for a token header, or None.
The authenticator (``shared.api.auth``) decides what a missing key means (401).

Which keys are usable, each bound to the one algorithm its type allows::

    RSA (>= 2048 bits)   -> RS256
    EC P-256             -> ES256
    anything else (``oct``, ``OKP``, P-384, ``use: enc``, private material, a declared
    ``alg`` that disagrees) is ignored, so the set cannot smuggle in an HMAC key

Cache policy:

- Keys are cached for ``ttl_s``. The caller that finds the cache stale refreshes it;
  concurrent callers keep using the stale key rather than queue behind it.
- An unknown ``kid`` (key rotation) triggers one refetch. Every fetch *attempt* is
  rate-limited to one per ``min_refresh_interval_s``, so a caller spraying random kids
  costs the JWKS endpoint at most one request per interval per instance.
- A token without ``kid`` finds a key only when the set holds exactly one usable key.
- Failure policy: when the JWKS cannot be fetched (network error, non-200, oversized
  or unusable document) the previous keys stay in use, however old. With nothing
  cached there is no key (the authenticator answers 401, never a 500 or 503: without
  keys we cannot tell a real token from a forged one, the SPEC's error table files every
  token-verification failure under 401, and a 503 would invite every client to retry
  into an identity-provider outage). The outage is logged at WARNING for on-call, and
  with an empty cache fetches are retried at most once per second (not once per
  interval) so recovery after a cold-start blip is quick.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx
    import jwt

__all__ = ["JWKS_ALGORITHMS", "JwksCache", "JwksKey", "parse_jwks"]

logger = logging.getLogger(__name__)

JWKS_ALGORITHMS: Final = frozenset({"RS256", "ES256"})
"""The algorithms a JWKS key may verify; a token's ``alg`` only selects among them."""

# Real JWKS documents are a few KiB; the cap bounds memory if the endpoint misbehaves.
_MAX_JWKS_BYTES = 256 * 1024
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


@dataclass(frozen=True, slots=True)
class JwksKey:
    """One usable key of the set and the one algorithm it verifies."""

    kid: str | None
    alg: str
    jwk: jwt.PyJWK


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """An immutable view of one successful fetch; replaced whole, never mutated."""

    keys: tuple[JwksKey, ...]
    fetched_at: float

    def find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is None:
            only = self.keys[0] if len(self.keys) == 1 else None
            return only.jwk if only is not None and only.alg == alg else None
        for key in self.keys:
            if key.kid == kid and key.alg == alg:
                return key.jwk
        return None


def _elapsed_at_least(now: float, since: float, seconds: float) -> bool:
    """True when ``seconds`` have passed; a clock that jumped backwards counts as passed."""
    elapsed = now - since
    return elapsed < 0 or elapsed >= seconds


class JwksCache:
    """The key set at ``url`` under the cache policy of the module doc.

    Thread-safe: one instance serves every request of a process. ``http`` is an optional
    client (tests inject one); otherwise one is created on the first fetch and reused.
    ``clock`` returns Unix seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl_s: float = 300,
        min_refresh_interval_s: float = 30.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0 or min_refresh_interval_s < 0:
            raise ValueError("ttl_s must be > 0 and min_refresh_interval_s >= 0")
        self._url = url
        self._ttl_s = ttl_s
        self._min_refresh_s = min_refresh_interval_s
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        # Readers take ``_snapshot`` without a lock (a reference read is atomic and the
        # snapshot is immutable). ``_fetch_lock`` serialises fetches and guards
        # ``_last_attempt_at`` and the lazy client, so concurrent misses cause one fetch.
        self._snapshot: _Snapshot | None = None
        self._last_attempt_at: float | None = None
        self._fetch_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP client if this instance created it."""
        with self._fetch_lock:
            if self._owns_http and self._http is not None:
                self._http.close()
                self._http = None

    def key(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        """The key for a token header's ``kid`` and ``alg``; None when the set has none."""
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
            self._snapshot = _Snapshot(keys=keys, fetched_at=self._last_attempt_at)

    def _fetch_keys(self) -> tuple[JwksKey, ...] | None:
        """The usable keys of the JWKS document, or None (logged) when there are none."""
        import httpx

        url = self._url
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
        keys = parse_jwks(document)
        if not keys:
            # Treated as a failed fetch: a broken response must not lock every user out.
            logger.warning("JWKS fetch failed: %s holds no usable RS256/ES256 key", url)
            return None
        return keys


def parse_jwks(document: Any) -> tuple[JwksKey, ...]:
    """Keys we may verify with, each bound to the one algorithm its type allows."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return ()
    keys: list[JwksKey] = []
    for entry in entries:
        key = _parse_jwk(entry)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _parse_jwk(entry: Any) -> JwksKey | None:
    # Imported here, with the first key set: the authenticator's module (and so every
    # bearer function's cold start) does not load PyJWT and cryptography at import.
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
    return JwksKey(kid=kid, alg=alg, jwk=jwk)
