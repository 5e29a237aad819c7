"""The example app (examples/web) in a real browser against ``make dev``'s server.

The test builds the app (Vite, from the npm lock) into a temporary folder, serves it from
its own origin, starts ``python -m scripts.dev_server`` as ``make dev`` does (on this run's
Postgres database and Redis prefix, that origin in ``CORS_ALLOWED_ORIGINS``, MiniMax at a
local server speaking its wire format: answers take 0.5 s, one brief is refused), and runs
``examples/web/tests/journey.mjs``: Debian's Chromium driven by playwright-core through
sign-in, validation, a generation that fails, create with its live states, targeted and
full regenerate (the cooldown's 429 shown as a countdown), save, library search / tag
filter / edit with If-Match / delete / undo / restore, usage meters, a user without a
plan, an hourly limit's countdown, phone width and keyboard use, with axe-core after each
screen.
Screenshots and results.json land in ``build/web/``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.devtoken import mint_dev_token
from devtools.fake_minimax import (
    FakeMiniMax,
    RecordedRequest,
    Scripted,
    answer_prompt,
    delayed,
    sensitive,
)
from devtools.net import free_port
from shared.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VITE = str(ROOT / "node_modules" / ".bin" / "vite")

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed and could not be (make test installs it "
    "through scripts/system_deps.sh when run as root; else: apt-get install chromium)",
)


# A brief the writer refuses (content policy: permanent, so the generation fails at once).
FAIL_BRIEF = "UNWRITABLE: a brief the writer refuses"
# A brief the writer takes its time over (the job stays running long enough to cancel).
SLOW_BRIEF = "SLOWLY: a brief to cancel while it is written"


def _writer(request: RecordedRequest) -> Scripted:
    """MiniMax as the dev server meets it: each answer after 0.5 s (so the page shows the job
    running), a content-policy refusal for FAIL_BRIEF, 6 s for SLOW_BRIEF (to cancel it)."""
    if "UNWRITABLE" in json.dumps(request.body):
        return sensitive()
    if "SLOWLY" in json.dumps(request.body):
        return delayed(answer_prompt(request), 6.0)
    return delayed(answer_prompt(request), 0.5)


@pytest.fixture
def minimax() -> Iterator[FakeMiniMax]:
    with FakeMiniMax(responder=_writer) as fake:
        yield fake


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def built_app(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            VITE,
            "build",
            "examples/web",
            "--outDir",
            str(dist),
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return dist


@pytest.fixture
def page_url(built_app: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(built_app))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    # "localhost", not 127.0.0.1: the page's origin differs from the API's, as deployed.
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dev_server(
    page_url: str,
    database_url: str,
    redis_url: str,
    run_prefix: str,
    minimax: FakeMiniMax,
    tmp_path: Path,
) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "QSTASH_"))},
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"{run_prefix}w",
        "QUEUE_BACKEND": "local",
        "AI_PROVIDER": "minimax",
        "AI_API_KEY": "mm-web-test",
        "AI_BASE_URL": minimax.url,
        "CORS_ALLOWED_ORIGINS": page_url.rstrip("/"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.dev_server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the dev server never answered /healthz"
            time.sleep(0.2)
        yield url, env
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _tokens(api_url: str, env: dict[str, str]) -> dict[str, str]:
    """A Standard user, a Basic user (plans granted by an admin) and one with no plan."""
    settings = load_settings(env)
    secret = settings.effective_hs256_secret
    assert secret, "the dev server has no HS256 secret"

    def mint(user: str, admin: bool = False) -> str:
        return mint_dev_token(
            user,
            secret=secret,
            admin=admin,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )

    suffix = os.urandom(4).hex()
    admin = mint(f"web-admin-{suffix}", admin=True)
    tokens = {}
    for name, plan in (("STANDARD", "standard"), ("BASIC", "basic"), ("FRESH", None)):
        user = f"web-{name.lower()}-{suffix}"
        if plan:
            granted = httpx.post(
                api_url + "/v1/admin/subscriptions",
                json={"user_id": user, "plan": plan},
                headers={"Authorization": f"Bearer {admin}"},
                timeout=30,
            )
            assert granted.status_code == 200, granted.text
        tokens[f"TOKEN_{name}"] = mint(user)
    return tokens


def test_the_journeys_in_a_real_browser(
    dev_server: tuple[str, dict[str, str]], page_url: str
) -> None:
    api_url, env = dev_server
    shutil.rmtree(OUT, ignore_errors=True)
    run = subprocess.run(
        ["node", "examples/web/tests/journey.mjs"],
        cwd=ROOT,
        env={
            **os.environ,
            "PAGE_URL": page_url,
            "API_URL": api_url,
            "OUT_DIR": str(OUT),
            "CHROMIUM": CHROMIUM,
            "FAIL_BRIEF": FAIL_BRIEF,
            "SLOW_BRIEF": SLOW_BRIEF,
            **_tokens(api_url, env),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + "\n" + run.stderr[-6000:]
    results = json.loads((OUT / "results.json").read_text())
    assert set(results["journeys"]) >= {
        "failed",
        "cancel",
        "create",
        "regenerate",
        "library",
        "hourly-limit",
    }
    assert {"create": ["queued", "running", "succeeded"]} in results["states"]
    assert {"cancel": ["queued", "running", "cancelled"]} in results["states"]
    assert results["eventStream"] == [200], results["eventStream"]
    assert len(results["screenshots"]) >= 10
    serious = [
        v
        for found in results["axe"].values()
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, serious
