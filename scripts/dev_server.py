"""``make dev``: every function on one port, ready to use by hand.

With nothing configured it starts embedded Postgres + Redis (under LOCAL_DATA_DIR), the
local queue and the offline writer, then makes sure the development user (``--user``,
default ``dev``) has a plan (Standard, unless it already has one), and prints its token,
the curl lines of a first journey and the URL of the example page, which this server
serves itself under ``/example/``, on the API's own origin (so the page finds the API
without configuration), with the token in the URL's fragment (so it opens signed in).
The page is the built app, ``examples/web/dist/`` (``make dev`` runs ``make web`` first
when npm is there and a source is newer than the build); without a build, a page saying
how to make one (a browser cannot run the TypeScript sources). Unless
``CORS_ALLOWED_ORIGINS`` is set, the page's origins (127.0.0.1 and localhost on this port)
and a Vite dev server's (port 5173) are allowed.
Ctrl-C or SIGTERM stops the server and the embedded servers it started.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from devtools.devtoken import mint_dev_token
from devtools.local_server import LocalServer, prepare_container, shut_down, stop_on_signals
from shared.bootstrap import Container
from shared.config import ConfigError, Settings, load_settings
from shared.observability.logging import configure_logging

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PREFIX = "/example/"
DEFAULT_PLAN = "standard"
TOKEN_TTL_S = 24 * 3600
VITE_DEV_PORT = 5173
NOT_BUILT_DIR = ROOT / "scripts" / "example_not_built"
"""The page served under /example/ while the app is not built."""


def example_dir(root: Path = ROOT) -> Path:
    """The example app's build output when there is one, else the page that says how to
    build it."""
    built = root / "examples" / "web" / "dist"
    return built if (built / "index.html").is_file() else NOT_BUILT_DIR


def development_origins(port: int) -> str:
    """The origins ``make dev`` allows by CORS when ``CORS_ALLOWED_ORIGINS`` is unset."""
    return ",".join(
        f"http://{host}:{p}" for p in (port, VITE_DEV_PORT) for host in ("127.0.0.1", "localhost")
    )


def ensure_plan(base_url: str, secret: str, settings: Settings, user: str) -> str:
    """The user's plan, after granting ``DEFAULT_PLAN`` through the admin API if it had none."""

    def bearer(sub: str, admin: bool = False) -> dict[str, str]:
        token = mint_dev_token(
            sub,
            secret=secret,
            admin=admin,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )
        return {"Authorization": f"Bearer {token}"}

    with httpx.Client(base_url=base_url, timeout=30) as client:
        usage = client.get("/v1/usage", headers=bearer(user))
        usage.raise_for_status()
        plan: str | None = usage.json()["plan"]
        if plan:
            return plan
        granted = client.post(
            "/v1/admin/subscriptions",
            json={"user_id": user, "plan": DEFAULT_PLAN},
            headers=bearer("dev-admin", admin=True),
        )
        granted.raise_for_status()
    return DEFAULT_PLAN


# The journey by hand, printed by make dev after `export TOKEN=…` and `API=…`; the README's
# tour is these lines (tests/unit/test_dev_server.py), and the docs test runs them.
TOUR = """\
H="Authorization: Bearer $TOKEN"

# create: answered at once (202); the job is queued
CREATED=$(curl -s -X POST $API/v1/create -H "$H" -H 'Content-Type: application/json' \\
  -d '{"brief": "3 reasons to drink water, upbeat", "platform": "tiktok", "variants": 2}')
echo "$CREATED" | jq .
GEN=$(echo "$CREATED" | jq -r .generation_id)

# poll until the job has finished (queued -> running -> succeeded, or failed)
for i in $(seq 30); do
  curl -s $API/v1/generations/$GEN -H "$H" | jq -e '.status | IN("succeeded", "failed")' && break
  sleep 1
done
curl -s $API/v1/generations/$GEN -H "$H" | jq '{status, variants: [.variants[] | {id, hook}]}'

# save the first variant to the library, then search the library
curl -s $API/v1/generations/$GEN -H "$H" \\
  | jq '{draft_id, variant_id: .variants[0].id, tags: ["water"]}' \\
  | curl -s -X POST $API/v1/library/assets -H "$H" -H 'Content-Type: application/json' -d @- \\
  | jq '{id, title, tags, status}'
curl -s "$API/v1/library/assets?q=water" -H "$H" | jq '[.items[] | {title, tags}]'

# usage: this month's generations, this hour's, full regenerations, jobs in flight
curl -s $API/v1/usage -H "$H" | jq .
"""


def welcome(
    base_url: str,
    user: str,
    plan: str,
    token: str,
    origins: tuple[str, ...],
    *,
    built: bool = True,
) -> str:
    """What ``make dev`` prints once it is ready: the token, a journey by hand, the page
    (its URL carries the token in the fragment, which the page reads and removes)."""
    lines = f"export TOKEN={token}\nAPI={base_url}\n{TOUR}"
    page = f"{base_url}{EXAMPLE_PREFIX}#token={token}"
    if built:
        example = f"Example page (opens signed in as {user!r}): {page}"
    else:
        example = (
            "Example page: NOT BUILT (it needs Node.js 20+ and npm: run `make web`, then "
            f"reload; until then it says so): {page}"
        )
    return f"""
Reel Content dev server on {base_url} (Ctrl-C stops it and the embedded Postgres/Redis)
User {user!r} has the {plan.capitalize()} plan; a journey by hand (another terminal, needs curl
and jq; the token is valid 24 h, `make token` prints a fresh one):

{lines}
{example}
CORS allows: {", ".join(origins) or "no origin"}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--user", default="dev", help="the development user (default: dev)")
    args = parser.parse_args(argv)
    os.environ["PORT"] = str(args.port)
    os.environ.setdefault("CORS_ALLOWED_ORIGINS", development_origins(args.port))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    secret = settings.effective_hs256_secret
    if settings.is_production or not secret:
        print("make dev needs development settings with an HS256 secret", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    container: Container | None = None
    server: LocalServer | None = None
    with stop_on_signals():
        try:
            container = prepare_container(settings)
            page_dir = example_dir()
            server = LocalServer(args.port, static=(EXAMPLE_PREFIX, page_dir)).start()
            plan = ensure_plan(server.url, str(secret), settings, args.user)
            token = mint_dev_token(
                args.user,
                secret=str(secret),
                ttl_s=TOKEN_TTL_S,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
            )
            origins = settings.cors_allowed_origins
            built = page_dir != NOT_BUILT_DIR
            print(welcome(server.url, args.user, plan, token, origins, built=built), flush=True)
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            shut_down(container, server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
