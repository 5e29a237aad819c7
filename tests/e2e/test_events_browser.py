"""A real ``EventSource`` in headless Chromium watches a job go queued → running →
succeeded over GET /v1/generations/{id}/events (the token in ``access_token``: an
EventSource cannot send headers), and each event's arrival in the page is compared with
the status change's time in Postgres. Skipped where Debian's ``chromium`` and
``chromium-driver`` are not installed."""

from __future__ import annotations

import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devtools.fake_minimax import delayed, ok
from shared.clock import SystemClock
from tests.support.e2e import Api, WorkerEnvFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

_OPEN = """
window.__events = [];
const source = new EventSource(arguments[0]);
window.__source = source;
for (const name of ["queued", "running", "succeeded", "failed", "cancelled"]) {
  source.addEventListener(name, (e) => {
    window.__events.push({id: e.lastEventId, event: e.type, at: Date.now(),
                          data: JSON.parse(e.data)});
    if (name !== "queued" && name !== "running") source.close();
  });
}
"""


class _Page(BaseHTTPRequestHandler):
    """An empty page on another origin than the API (as the web example is)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>events</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def page_origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # never let selenium-manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_event_source_in_chromium_sees_queued_running_succeeded(
    browser: Any,
    page_origin: str,
    make_worker_env: WorkerEnvFactory,
    api: Callable[..., Api],
) -> None:
    env = make_worker_env(clock=SystemClock(), cors_allowed_origins=page_origin)
    user = api("pro")
    base = str(env.http.base_url).rstrip("/")
    browser.get(page_origin)  # another origin: the stream is a CORS request
    lags: list[float] = []
    for _ in range(5):
        env.fake.push(delayed(ok(count=1), 0.6))
        generation_id = env.create(user.headers)
        token = user.headers["Authorization"].removeprefix("Bearer ")
        url = f"{base}/v1/generations/{generation_id}/events?access_token={token}"
        browser.execute_script(_OPEN, url)
        _wait(lambda: len(browser.execute_script("return window.__events")) >= 1)
        assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}
        _wait(lambda: len(browser.execute_script("return window.__events")) >= 3)
        got = browser.execute_script("return window.__events")

        assert [(e["id"], e["event"]) for e in got] == [
            ("1", "queued"),
            ("2", "running"),
            ("3", "succeeded"),
        ]
        assert len(got[2]["data"]["variants"]) == 1
        [[started, completed]] = env.sql(
            "SELECT started_at, completed_at FROM generations WHERE id = CAST(:g AS uuid)",
            g=generation_id,
        )
        lags.append(got[1]["at"] / 1000 - started.timestamp())
        lags.append(got[2]["at"] / 1000 - completed.timestamp())
    print(
        f"\nChromium EventSource lag after the Postgres move, {len(lags)} events: "
        f"p50 {statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms"
    )
    assert min(lags) > -0.05
    assert statistics.median(lags) < 0.3  # measured p50 ~170 ms, max ~230 ms
    assert max(lags) < 0.75


def _wait(done: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the page never got the events"
        time.sleep(0.02)
