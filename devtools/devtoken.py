"""Development bearer tokens (HS256), for local runs, the demo and tests.

    make token [USER_ID=dev] [ADMIN=1]          # or:
    .venv/bin/python -m devtools.devtoken USER_ID [--admin] [--ttl-s 3600]

prints a token signed with ``settings.effective_hs256_secret``, carrying ``iss`` and
``aud`` when configured so ``Authenticator.from_settings`` accepts it. It refuses
(exit 2, reason on stderr) when ``APP_ENV=production`` or no HS256 secret is available
(e.g. only ``AUTH_JWKS_URL`` is configured).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

try:
    import jwt
except ModuleNotFoundError as exc:  # a Python without the project's venv (a bare `python -m`)
    raise SystemExit(
        f"devtoken: {exc}: run it as `.venv/bin/python -m devtools.devtoken …` or `make token`"
    ) from exc

from shared.api.auth import is_valid_subject
from shared.config import MIN_HS256_SECRET_BYTES, ConfigError, load_settings

__all__ = ["main", "mint_dev_token"]


def mint_dev_token(
    user_id: str,
    *,
    secret: str,
    admin: bool = False,
    ttl_s: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token for ``user_id`` valid for ``ttl_s`` from ``now`` (Unix seconds).

    Raises ``ValueError`` for a user id the authenticator would reject, a non-positive
    ttl or a secret shorter than 32 bytes.
    """
    if not is_valid_subject(user_id):
        raise ValueError("user_id must be 1-128 printable characters without whitespace")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
        raise ValueError(f"secret must be at least {MIN_HS256_SECRET_BYTES} bytes")
    issued_at = int(time.time() if now is None else now)
    claims: dict[str, object] = {"sub": user_id, "iat": issued_at, "exp": issued_at + ttl_s}
    if admin:
        claims["role"] = "admin"
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.devtoken",
        description="Print a development bearer token.",
    )
    parser.add_argument("user_id", help="the token's sub (the user id)")
    parser.add_argument("--admin", action="store_true", help='add role: "admin"')
    parser.add_argument("--ttl-s", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"devtoken: configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.is_production:
        print("devtoken: refusing to mint a development token: APP_ENV=production", file=sys.stderr)
        return 2
    secret = settings.effective_hs256_secret
    if not secret:
        print(
            "devtoken: no HS256 secret available (set AUTH_HS256_SECRET, or unset AUTH_JWKS_URL)",
            file=sys.stderr,
        )
        return 2
    try:
        token = mint_dev_token(
            args.user_id,
            secret=secret,
            admin=args.admin,
            ttl_s=args.ttl_s,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
    except ValueError as exc:
        print(f"devtoken: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
