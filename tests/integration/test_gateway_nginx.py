"""The rendered nginx gateway, run by the real nginx: each path reaches its function with
the original path, other methods get 405 and other paths 404 from the gateway itself."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from devtools.gateway import render_nginx
from devtools.net import free_port
from shared.registry import FUNCTIONS

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make rehearse)")


class Backend:
    """One fake function: answers 200 with its name and the path it was asked for."""

    def __init__(self, name: str) -> None:
        outer = self
        self.name = name
        self.seen: list[tuple[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.seen.append((self.command, self.path))
                body = f"{outer.name} {self.command} {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_OPTIONS = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backends = {spec.name: Backend(spec.name) for spec in FUNCTIONS}
    prefix = tmp_path_factory.mktemp("nginx")
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / sub).mkdir(parents=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx({n: b.url for n, b in backends.items()}, port=port, prefix=prefix))
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    for backend in backends.values():
        backend.server.shutdown()
        backend.server.server_close()


@pytest.mark.parametrize(
    ("method", "path", "function"),
    [
        ("POST", "/v1/create", "create"),
        ("OPTIONS", "/v1/create", "create"),
        ("GET", "/v1/generations/abc-123", "generations"),
        ("PATCH", "/v1/drafts/d1", "drafts"),
        ("GET", "/v1/library/assets?q=water&tags=a", "library"),
        ("POST", "/v1/admin/boosts", "admin"),
        ("POST", "/webhooks/stripe", "stripe-webhook"),
        ("GET", "/readyz", "health"),
    ],
)
def test_each_path_reaches_its_function_unchanged(
    gateway: str, method: str, path: str, function: str
) -> None:
    r = httpx.request(method, gateway + path, timeout=10)
    assert r.status_code == 200
    assert r.text == f"{function} {method} {path}"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/create", 405),
        ("POST", "/v1/usage", 405),
        ("GET", "/v1/generations/a/b", 404),
        ("POST", "/worker/generate", 404),  # QStash calls the worker directly
        ("GET", "/v1/nothing", 404),
        ("GET", "/", 404),
    ],
)
def test_the_gateway_refuses_what_the_document_does_not_list(
    gateway: str, method: str, path: str, status: int
) -> None:
    r = httpx.request(method, gateway + path, timeout=10)
    assert r.status_code == status
    assert r.json()["code"] == status
