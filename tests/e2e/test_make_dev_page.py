"""The example page ``make dev`` prints works as printed: ``make dev`` itself (the real
target: it builds the app when a source is newer than ``examples/web/dist``), then the
printed link in Debian's Chromium (``examples/web/tests/first_visit.mjs``). The page opens
signed in as the development user, calls the API on its own origin, and a create ends
with its variants. The screenshot lands in ``build/web/make-dev-first-visit.png``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools.net import free_port
from tests.e2e.test_docs_commands import newcomer_env
from tests.support.processes import running_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def test_the_printed_link_opens_signed_in_and_creates(
    database_url: str, redis_url: str, run_prefix: str
) -> None:
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.fail("node_modules is missing: run `npm ci` (make test does it first)")
    port = free_port()
    env = newcomer_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"{run_prefix}mdp",
        AI_PROVIDER="offline",
    )
    with running_until(
        ["make", "--no-print-directory", "dev", f"PORT={port}"],
        "Example page",
        cwd=ROOT,
        env=env,
        timeout_s=240,
    ) as seen:
        assert seen, "make dev printed nothing"
        printed = seen[-1]
        assert printed.startswith("Example page (opens signed in"), "".join(seen[-40:])
        link = re.search(r"(http://\S+)", printed)
        assert link is not None, printed
        assert link.group(1).startswith(f"http://127.0.0.1:{port}/example/#token=")
        out = ROOT / "build" / "web"
        out.mkdir(parents=True, exist_ok=True)
        shot = out / "make-dev-first-visit.png"
        visit = subprocess.run(
            [
                "node",
                str(ROOT / "examples" / "web" / "tests" / "first_visit.mjs"),
                link.group(1),
                str(shot),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert visit.returncode == 0, visit.stdout[-3000:] + visit.stderr[-3000:]
        saw = json.loads(visit.stdout.strip().splitlines()[-1])
    assert saw["user"] == "dev", saw
    assert saw["plan"].startswith("Standard"), saw
    assert "#token=" not in saw["urlAfter"], saw  # the page took the token out of the URL
    assert set(saw["apiCalls"]) == {f"http://127.0.0.1:{port}"}, saw  # its own origin
    assert saw["failures"] == [], saw
    assert saw["variants"] == 2, saw
    assert shot.stat().st_size > 10_000
