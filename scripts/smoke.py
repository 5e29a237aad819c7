"""``make smoke BASE_URL=…``: create → poll → save against any deployment.

The bearer token comes from one of, never from the command line (a command line is
echoed by make into consoles and CI logs and is visible in ``ps``); nothing here prints it:

- ``--client-credentials`` (the deploy workflow): a fresh token minted for this run by
  the identity provider's token endpoint (OAuth 2.0 client credentials, RFC 6749 §4.4)
  for the dedicated smoke client: ``SMOKE_TOKEN_URL``, ``SMOKE_CLIENT_ID``,
  ``SMOKE_AUDIENCE`` (= ``AUTH_AUDIENCE``) and ``SMOKE_CLIENT_SECRET``, which may be a
  Secret Manager version name (``projects/…/secrets/…/versions/…``) read with the
  caller's Google credentials. No token outlives the run (terraform/README.md "Smoke").
- ``SMOKE_TOKEN`` in the environment or a file (``--token-file``, ``make smoke
  TOKEN_FILE=…``): for a local server (``python -m devtools.devtoken``).

The token must belong to a user with an active plan. Exits 0 only when every step
answers as the contract says.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping

import httpx

from shared.config import ConfigError, is_safe_transport, resolve_secrets

CLIENT_CREDENTIALS_ENV = (
    "SMOKE_TOKEN_URL",
    "SMOKE_CLIENT_ID",
    "SMOKE_CLIENT_SECRET",
    "SMOKE_AUDIENCE",
)


class TokenError(RuntimeError):
    """The smoke token could not be minted; the message names why (never a secret)."""


def mint_token(
    env: Mapping[str, str],
    *,
    http: httpx.Client | None = None,
    resolve: Callable[[Mapping[str, str]], dict[str, str]] = resolve_secrets,
) -> str:
    """A fresh access token for the smoke client (OAuth 2.0 client credentials grant)."""
    missing = [name for name in CLIENT_CREDENTIALS_ENV if not env.get(name, "").strip()]
    if missing:
        raise TokenError(f"--client-credentials needs {', '.join(missing)}")
    token_url = env["SMOKE_TOKEN_URL"].strip()
    if not is_safe_transport(token_url):
        raise TokenError("SMOKE_TOKEN_URL: an https:// (or loopback http://) URL is required")
    try:
        secret = resolve({"SMOKE_CLIENT_SECRET": env["SMOKE_CLIENT_SECRET"].strip()})
    except ConfigError as exc:
        raise TokenError(f"SMOKE_CLIENT_SECRET: cannot read it ({exc})") from exc
    form = {
        "grant_type": "client_credentials",
        "client_id": env["SMOKE_CLIENT_ID"].strip(),
        "client_secret": secret["SMOKE_CLIENT_SECRET"],
        "audience": env["SMOKE_AUDIENCE"].strip(),
    }
    client = http or httpx.Client(timeout=30)
    try:
        response = client.post(token_url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TokenError(f"token endpoint unreachable: {type(exc).__name__}") from exc
    finally:
        if http is None:
            client.close()
    if response.status_code != 200:
        raise TokenError(f"token endpoint: HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise TokenError("token endpoint: the answer is not JSON") from exc
    token = body.get("access_token") if isinstance(body, dict) else None
    if (
        not isinstance(token, str)
        or not token
        or body.get("token_type", "Bearer").lower() != "bearer"
    ):
        raise TokenError("token endpoint: no bearer access_token in the answer")
    return token


def run(base_url: str, token: str, timeout_s: float = 120.0) -> list[str]:
    """Run the smoke journey; returns the failures (empty on success)."""
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": f"smoke-{uuid.uuid4().hex[:12]}"}
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=30, headers=headers) as client:
        health = client.get("/healthz")
        if health.status_code != 200:
            return [f"healthz: HTTP {health.status_code}"]
        brief = {"brief": "Smoke test: one tip for better sleep", "platform": "tiktok"}
        created = client.post(
            "/v1/create", json=brief, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        if created.status_code != 202:
            return [f"create: HTTP {created.status_code} {created.text[:300]}"]
        ids = created.json()
        deadline = time.monotonic() + timeout_s
        status = "queued"
        gen: dict[str, object] = {}
        while time.monotonic() < deadline and status not in ("succeeded", "failed"):
            time.sleep(0.5)
            gen = client.get(f"/v1/generations/{ids['generation_id']}").json()
            status = str(gen["status"])
        if status != "succeeded":
            return [f"generation ended {status}: {gen.get('error')}"]
        variants = gen["variants"]
        assert isinstance(variants, list)
        saved = client.post(
            "/v1/library/assets",
            json={"draft_id": ids["draft_id"], "variant_id": variants[0]["id"], "tags": ["smoke"]},
        )
        if saved.status_code != 201:
            return [f"library save: HTTP {saved.status_code} {saved.text[:300]}"]
        print(f"smoke ok: generation {ids['generation_id']} succeeded, asset {saved.json()['id']}")
        return []


USAGE = (
    "usage: SMOKE_TOKEN=<bearer token> make smoke BASE_URL=https://…\n"
    "   or: make smoke BASE_URL=https://… TOKEN_FILE=<file holding the token>\n"
    "   or: SMOKE_TOKEN_URL=… SMOKE_CLIENT_ID=… SMOKE_CLIENT_SECRET=… SMOKE_AUDIENCE=…"
    " python -m scripts.smoke --base-url https://… --client-credentials"
)


def read_token(token_file: str | None, env: Mapping[str, str]) -> str:
    """The bearer token from ``token_file`` when given, else ``SMOKE_TOKEN``; "" if none."""
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            return f.read().strip()
    return env.get("SMOKE_TOKEN", "").strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default=os.environ.get("BASE_URL", ""))
    parser.add_argument("--token-file", help="a file holding the bearer token (else SMOKE_TOKEN)")
    parser.add_argument(
        "--client-credentials",
        action="store_true",
        help="mint a fresh token for the smoke client (SMOKE_TOKEN_URL, SMOKE_CLIENT_*)",
    )
    args = parser.parse_args(argv)
    try:
        if args.client_credentials:
            token = mint_token(os.environ)
        else:
            token = read_token(args.token_file, os.environ)
    except OSError as exc:
        print(f"smoke: cannot read --token-file: {exc.strerror}", file=sys.stderr)
        return 2
    except TokenError as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return 2
    if not args.base_url or not token:
        print(USAGE, file=sys.stderr)
        return 2
    failures = run(args.base_url, token)
    for failure in failures:
        print(f"SMOKE FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
