"""``make smoke BASE_URL=…``: create → poll → save against any deployment.

The bearer token comes from ``SMOKE_TOKEN`` in the environment or from a file
(``--token-file``, ``make smoke TOKEN_FILE=…``), never from the command line: a command
line is echoed by make into consoles and CI logs and is visible in ``ps``. Nothing here
prints it. The token must belong to a user with an active plan (``python -m
devtools.devtoken`` for a local server; a real ID token for a deployed one). Exits 0
only when every step answers as the contract says.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Mapping

import httpx


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
    "   or: make smoke BASE_URL=https://… TOKEN_FILE=<file holding the token>"
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
    args = parser.parse_args(argv)
    try:
        token = read_token(args.token_file, os.environ)
    except OSError as exc:
        print(f"smoke: cannot read --token-file: {exc.strerror}", file=sys.stderr)
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
