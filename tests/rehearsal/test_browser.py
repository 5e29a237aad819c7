"""A real browser runs the example app's journeys (examples/web, built by the rehearsal
and served from another origin than the API) against a running rehearsal
(``make rehearse-test``): the gateway for every call, the usage function's own URL for
``/v1/usage``, RS256 tokens from the rehearsal's issuer.

The journeys are ``examples/web/tests/journey.mjs`` (Debian's Chromium driven by
playwright-core, axe-core after each screen), the same ones ``tests/e2e/test_web_app.py``
runs against ``make dev``'s server. Screenshots and results.json land in
``build/rehearse/browser/``; the journeys' time in ``build/rehearse/browser.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.jwks_server import Issuer
from tests.support.e2e import REHEARSAL_STATE, rehearsal_state

pytestmark = [
    pytest.mark.rehearsal,
    pytest.mark.skipif(not REHEARSAL_STATE, reason="needs a running rehearsal (E2E_REHEARSAL)"),
]

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "build" / "rehearse"
OUT = STATE / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _tokens(state: dict[str, Any]) -> dict[str, str]:
    """A Standard user, a Basic user (granted through the gateway) and one with no plan."""
    issuer = Issuer.load(Path(state["issuer_file"]))
    admin = issuer.mint("browser-admin", admin=True)
    suffix = os.urandom(4).hex()
    tokens = {}
    for name, plan in (("STANDARD", "standard"), ("BASIC", "basic"), ("FRESH", None)):
        user = f"browser-{name.lower()}-{suffix}"
        if plan:
            granted = httpx.post(
                state["gateway_url"] + "/v1/admin/subscriptions",
                json={"user_id": user, "plan": plan},
                headers={"Authorization": f"Bearer {admin}"},
                timeout=30,
            )
            assert granted.status_code == 200, granted.text
        tokens[f"TOKEN_{name}"] = issuer.mint(user)
    return tokens


def test_the_journeys_through_the_example_app() -> None:
    state = rehearsal_state()
    page = state["page_url"]
    usage_url = next(p["url"] for p in state["processes"] if p["name"] == "usage")
    assert page.split("/")[2] != state["gateway_url"].split("/")[2]  # another origin
    shutil.rmtree(OUT, ignore_errors=True)
    started = time.monotonic()
    run = subprocess.run(
        ["node", "examples/web/tests/journey.mjs"],
        cwd=ROOT,
        env={
            **os.environ,
            "PAGE_URL": page,
            "API_URL": state["gateway_url"],
            "USAGE_URL": usage_url,
            "OUT_DIR": str(OUT),
            "CHROMIUM": CHROMIUM,
            **_tokens(state),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed_s = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + "\n" + run.stderr[-6000:]
    results = json.loads((OUT / "results.json").read_text())
    assert set(results["journeys"]) >= {"create", "regenerate", "library", "hourly-limit"}
    (STATE / "browser.json").write_text(json.dumps({"journey_s": round(elapsed_s, 2)}))
