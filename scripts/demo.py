"""``make demo``: the whole journey against a local server, printed step by step.

With nothing configured it starts embedded Postgres + Redis (under LOCAL_DATA_DIR),
the local queue and the offline writer, then: dev token → plan granted → create (3
variants, standard) → poll until succeeded → targeted regenerate → save a variant to
the library → search the library → usage. Exits 0 only when every step succeeded, and
stops what it started.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from typing import Any

import httpx

from devtools.devtoken import mint_dev_token
from devtools.local_server import LocalServer, prepare_container, shut_down, stop_on_signals
from devtools.net import free_port
from shared.bootstrap import Container
from shared.config import load_settings


class DemoFailed(RuntimeError):
    pass


def _show(step: str, response: httpx.Response, expect: int) -> Any:
    ok = response.status_code == expect
    mark = "ok " if ok else "FAIL"
    print(f"[{mark}] {step}: HTTP {response.status_code}")
    body = response.json() if response.content else None
    print("      " + json.dumps(body, indent=2).replace("\n", "\n      ")[:1500])
    if not ok:
        raise DemoFailed(f"{step}: expected {expect}, got {response.status_code}")
    return body


def _poll(client: httpx.Client, headers: dict[str, str], generation_id: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/v1/generations/{generation_id}", headers=headers).json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.1)
    raise DemoFailed(f"generation {generation_id} did not finish in 60 s")


def journey(client: httpx.Client, secret: str) -> None:
    """Walk and print every step; raises DemoFailed at the first that goes wrong."""
    user = f"demo-{secrets.token_hex(4)}"
    user_h = {"Authorization": f"Bearer {mint_dev_token(user, secret=secret)}"}
    admin_h = {"Authorization": f"Bearer {mint_dev_token('demo-admin', secret=secret, admin=True)}"}
    print(f"Dev token minted for user {user!r} (HS256, development only)\n")
    _show("health", client.get("/healthz"), 200)
    _show("grant plan standard", client.post(
        "/v1/admin/subscriptions", json={"user_id": user, "plan": "standard"}, headers=admin_h
    ), 200)  # fmt: skip
    brief = {"brief": "3 reasons to drink water, upbeat", "platform": "tiktok", "variants": 3,
             "title": "Hydration", "tone": "upbeat", "duration_seconds": 30}  # fmt: skip
    created = _show(
        "create (3 variants)", client.post("/v1/create", json=brief, headers=user_h), 202
    )
    gen = _show(
        "poll until done",
        httpx.Response(200, json=_poll(client, user_h, created["generation_id"])),
        200,
    )
    if gen["status"] != "succeeded" or len(gen["variants"]) != 3:
        raise DemoFailed("the generation did not succeed with 3 variants")
    source = gen["variants"][0]
    regen = _show("regenerate (targeted: hook)", client.post("/v1/regenerate", json={
        "draft_id": created["draft_id"], "mode": "targeted", "variant_id": source["id"],
        "fields": ["hook"], "instructions": "punchier",
    }, headers=user_h), 202)  # fmt: skip
    regen_gen = _poll(client, user_h, regen["generation_id"])
    _show("regeneration result", httpx.Response(200, json=regen_gen), 200)
    if regen_gen["status"] != "succeeded":
        raise DemoFailed("the regeneration did not succeed")
    variant = regen_gen["variants"][0]
    _show("save to library", client.post("/v1/library/assets", json={
        "draft_id": created["draft_id"], "variant_id": variant["id"], "tags": ["water", "health"],
    }, headers=user_h), 201)  # fmt: skip
    found = _show("search library (q=water, tags=health)", client.get(
        "/v1/library/assets", params={"q": "water", "tags": "health"}, headers=user_h
    ), 200)  # fmt: skip
    if not found["items"]:
        raise DemoFailed("the saved asset was not found")
    usage = _show("usage", client.get("/v1/usage", headers=user_h), 200)
    if usage["generations"]["used"] != 2 or usage["concurrency"]["in_use"] != 0:
        raise DemoFailed("usage does not show 2 generations and no job in flight")


def main() -> int:
    os.environ.setdefault("PORT", str(free_port()))
    settings = load_settings()
    container: Container | None = None
    server: LocalServer | None = None
    with stop_on_signals():
        try:
            print("Starting the local server (embedded Postgres/Redis unless configured)...")
            container = prepare_container(settings)
            server = LocalServer(settings.port).start()
            print(f"Serving every function on {server.url}\n")
            with httpx.Client(base_url=server.url, timeout=30) as client:
                journey(client, str(settings.effective_hs256_secret))
        except DemoFailed as exc:
            print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nDemo interrupted.", file=sys.stderr)
            return 130
        finally:
            shut_down(container, server)
    print("\nDemo finished: every step succeeded.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
