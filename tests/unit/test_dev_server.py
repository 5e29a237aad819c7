"""``make dev``: the example page it serves, and the origins it allows by default."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from devtools.local_server import stop_on_signals, with_static
from scripts.dev_server import NOT_BUILT_DIR, development_origins, example_dir, welcome

ROOT = Path(__file__).resolve().parents[2]


def _api(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"api:" + environ["PATH_INFO"].encode()]


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "web"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<h1>page</h1>")
    (site / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not for the page")
    return site


def test_the_page_its_files_and_nothing_outside(tmp_path: Path) -> None:
    client = Client(with_static(_api, "/example/", _site(tmp_path)))
    page = client.get("/example/")
    assert page.status_code == 200
    assert page.text == "<h1>page</h1>"
    assert page.headers["Content-Type"].startswith("text/html")
    script = client.get("/example/assets/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    assert client.get("/example").headers["Location"].endswith("/example/")
    assert client.get("/example/../secret.txt").status_code == 404
    assert client.get("/example/%2e%2e/secret.txt").status_code == 404
    assert client.get("/example/missing.js").status_code == 404
    assert client.get("/v1/usage").text == "api:/v1/usage"  # everything else: the API
    assert client.post("/example/").text == "api:/example/"


def test_the_built_app_is_served_when_there_is_one(tmp_path: Path) -> None:
    """The sources are never served (a browser cannot run main.ts): without a build, a
    page that says how to make one."""
    web = tmp_path / "examples" / "web"
    web.mkdir(parents=True)
    (web / "index.html").write_text("sources")
    assert example_dir(tmp_path) == NOT_BUILT_DIR
    (web / "dist").mkdir()
    assert example_dir(tmp_path) == NOT_BUILT_DIR  # an empty dist/ is not a build
    (web / "dist" / "index.html").write_text("built")
    assert example_dir(tmp_path) == web / "dist"


def test_the_page_without_a_build_says_how_to_build_it() -> None:
    client = Client(with_static(_api, "/example/", NOT_BUILT_DIR))
    page = client.get("/example/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "make web" in page.text
    assert "npm" in page.text


def _make(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_make_dev_builds_the_app_when_a_source_is_newer() -> None:
    """``make -n -W <source>``: what make would do were that source just edited."""
    sources = ("examples/web/src/main.ts", "clients/ts/src/client.ts", "examples/web/index.html")
    for source in sources:
        assert (ROOT / source).is_file(), source
        planned = _make("-W", source, "dev")
        assert "vite build examples/web" in planned, (source, planned)
        assert "scripts.dev_server" in planned


def test_the_page_origin_is_allowed_by_default() -> None:
    origins = development_origins(8080).split(",")
    assert "http://127.0.0.1:8080" in origins
    assert "http://localhost:8080" in origins
    assert "http://localhost:5173" in origins
    printed = welcome("http://127.0.0.1:8080", "dev", "standard", "T0K", tuple(origins))
    assert "export TOKEN=T0K\nAPI=http://127.0.0.1:8080\n" in printed
    assert "Standard plan" in printed
    page = [ln for ln in printed.splitlines() if ln.startswith("Example page")]
    assert len(page) == 1, printed
    # The page opens signed in: the token rides in the fragment (never sent to a server).
    assert page[0].endswith(" http://127.0.0.1:8080/example/#token=T0K"), page


def _signal_self(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.2)  # the handler runs in the main thread at the next bytecode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_only_the_first_stop_signal_interrupts_so_the_stop_itself_runs_to_its_end(
    sig: signal.Signals,
) -> None:
    """make passes its own SIGTERM on: a second signal must not interrupt shut_down (it
    left the embedded Redis running now and then)."""
    finished = False
    with stop_on_signals():
        with pytest.raises(KeyboardInterrupt):
            _signal_self(sig)
        _signal_self(signal.SIGTERM)  # arrives while the servers stop
        _signal_self(sig)
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
