"""A real browser runs the journey through the example frontend (examples/web), served from
another origin than the API, against a running rehearsal (``make rehearse-test``).

Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium: sign
in with a minted RS256 token, create with an Idempotency-Key, poll until succeeded, show
the variants, save one, search it, read the 202's and a 429's headers through CORS, and
read usage from the usage function's own URL (no gateway). The screenshot lands in
``build/rehearse/browser.png``; the journey's time in ``build/rehearse/browser.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
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
OUT = ROOT / "build" / "rehearse"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Never let selenium-manager look for (or download) a browser or driver.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,2200"):
        options.add_argument(arg)
    options.add_argument("--disable-dev-shm-usage")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def wait_text(driver: Any, element_id: str, predicate: Any, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("id", element_id).text
        if predicate(text):
            return str(text)
        time.sleep(0.1)
    raise AssertionError(f"#{element_id} never matched; last text: {text!r}")


def header(driver: Any, block: str, name: str) -> str:
    return str(driver.find_element("css selector", f"#{block} dd[data-header='{name}']").text)


def standard_user_token(state: dict[str, Any]) -> str:
    """A token for a fresh user on the Standard plan (granted through the gateway)."""
    issuer = Issuer.load(Path(state["issuer_file"]))
    user = f"browser-{os.urandom(4).hex()}"
    granted = httpx.post(
        state["gateway_url"] + "/v1/admin/subscriptions",
        json={"user_id": user, "plan": "standard"},
        headers={"Authorization": f"Bearer {issuer.mint('browser-admin', admin=True)}"},
        timeout=30,
    )
    assert granted.status_code == 200, granted.text
    return issuer.mint(user)


def test_the_journey_through_the_example_page(browser: Any) -> None:
    state = rehearsal_state()
    token = standard_user_token(state)
    page = state["page_url"]
    usage_url = next(p["url"] for p in state["processes"] if p["name"] == "usage")
    assert page.split("/")[2] != state["gateway_url"].split("/")[2]  # another origin
    started = time.monotonic()
    browser.get(page)

    browser.find_element("id", "token").send_keys(token)
    browser.find_element("id", "signin-btn").click()
    wait_text(browser, "signin-status", lambda t: t.startswith("signed in: plan standard"))

    browser.find_element("id", "create-btn").click()
    wait_text(browser, "create-status", lambda t: t.startswith(("202", "HTTP")))
    assert browser.find_element("id", "create-status").text.startswith("202 accepted")
    # Read by JS from the 202: only possible because CORS exposes them.
    assert header(browser, "create-headers", "ratelimit-limit") == "300"
    assert header(browser, "create-headers", "ratelimit-remaining").isdigit()
    assert header(browser, "create-headers", "ratelimit-reset").isdigit()
    assert header(browser, "create-headers", "x-request-id") not in ("", "—")
    assert header(browser, "create-headers", "location").startswith("/v1/generations/")
    wait_text(browser, "generation-status", lambda t: t in ("succeeded", "failed"))
    assert browser.find_element("id", "generation-status").text == "succeeded"
    variants = browser.find_elements("css selector", "#variants-list li.variant")
    assert len(variants) == 3

    variants[1].find_element("css selector", ".save-btn").click()
    wait_text(browser, "save-status", lambda t: t.startswith(("saved", "save failed")))
    assert browser.find_element("id", "save-status").text.startswith("saved asset")
    browser.find_element("id", "search-btn").click()
    deadline = time.monotonic() + 20
    while not browser.find_elements("css selector", "#search-results li.asset"):
        assert time.monotonic() < deadline, "search showed nothing"
        time.sleep(0.1)
    [asset] = browser.find_elements("css selector", "#search-results li.asset")
    assert "rehearsal" in asset.text

    browser.find_element("id", "limit-btn").click()
    wait_text(browser, "limit-status", lambda t: "second" in t or t.startswith(("first", "error")))
    assert "second HTTP 429" in browser.find_element("id", "limit-status").text
    assert int(header(browser, "limit-headers", "retry-after")) >= 1
    assert header(browser, "limit-headers", "x-request-id") not in ("", "—")

    browser.find_element("id", "usage-btn").click()
    usage = wait_text(browser, "usage-status", lambda t: t.startswith(("plan", "HTTP", "error")))
    assert usage.startswith("plan standard:"), usage
    assert f"from {usage_url}" in usage  # the function's own URL, not the gateway
    elapsed_s = time.monotonic() - started

    OUT.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(OUT / "browser.png"))
    (OUT / "browser.json").write_text(json.dumps({"journey_s": round(elapsed_s, 2)}))
