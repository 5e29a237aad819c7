"""The local server: every Cloud Function on one port (``make dev``, e2e tests, demo).

Requests are routed by path (``shared.registry``) to the SAME function objects that
are deployed (``functions/<module>.py`` entry points), so local runs exercise exactly
the production request handling. The local queue delivers jobs back to this server's
``/worker/generate`` over HTTP with QStash signatures, on its own threads.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import mimetypes
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from werkzeug.security import safe_join
from werkzeug.serving import BaseWSGIServer, make_server

from devtools.compose import dev_container
from shared.bootstrap import Container, set_container
from shared.config import Settings
from shared.db.migrate import migrate
from shared.registry import function_for_path

__all__ = [
    "LocalServer",
    "build_app",
    "prepare_container",
    "shut_down",
    "stop_on_signals",
    "with_static",
]

_log = logging.getLogger("reel.local")


def build_app() -> Any:
    """A Flask app that forwards every request to the deployed entry point for its path."""
    import flask

    app = flask.Flask("reel-local")
    cache: dict[str, Callable[[flask.Request], flask.Response]] = {}

    @app.route(
        "/", defaults={"path": ""}, methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]
    )
    @app.route("/<path:path>", methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"])
    def route(path: str) -> flask.Response:
        spec = function_for_path(flask.request.path)
        name = spec.module if spec else "health"  # unknown paths: any function answers 404
        if name not in cache:
            module = importlib.import_module(f"functions.{name}")
            cache[name] = getattr(module, spec.entry_point if spec else "health")
        return cache[name](flask.request)

    def unrouted(_exc: Exception) -> flask.Response:
        # Flask's own router refused the request (a path with a newline escapes
        # ``<path:path>``; a method outside the list): our wrapper answers it, in the SPEC
        # error shape, instead of Flask's HTML page.
        return route(flask.request.path)

    app.register_error_handler(404, unrouted)
    app.register_error_handler(405, unrouted)
    return app


def with_static(app: Any, prefix: str, directory: Path) -> Any:
    """``app`` with the files of ``directory`` served under ``prefix`` (``/example/``):
    ``index.html`` for a directory, 404 for anything missing or outside it. Development
    only (``make dev`` serves the example page on the API's own origin)."""
    bare = prefix.rstrip("/")

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if path == bare:
            start_response("308 Permanent Redirect", [("Location", prefix)])
            return [b""]
        if not path.startswith(prefix) or environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return app(environ, start_response)  # type: ignore[no-any-return]
        relative = path[len(prefix) :]
        if relative == "" or relative.endswith("/"):
            relative += "index.html"
        found = safe_join(str(directory), relative)
        if found is None or not Path(found).is_file():
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = Path(found).read_bytes()
        kind = mimetypes.guess_type(found)[0] or "application/octet-stream"
        start_response(
            "200 OK",
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    return serve


def prepare_container(settings: Settings) -> Container:
    """Migrate the database (embedded when unconfigured) and install the container."""
    container = dev_container(settings)
    migrate(container.database_url)
    set_container(container)
    return container


class LocalServer:
    """A threaded WSGI server on 127.0.0.1 running ``build_app()`` in the background."""

    def __init__(
        self, port: int = 0, host: str = "127.0.0.1", *, static: tuple[str, Path] | None = None
    ) -> None:
        # Our own JSON request lines replace werkzeug's access log.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = build_app() if static is None else with_static(build_app(), *static)
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._serving = False

    def start(self) -> LocalServer:
        self._serving = True
        self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for a serve loop to end: it would wait forever for one that
        # never began (stopped during start-up).
        if self._serving:
            self._server.shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._server.server_close()

    def serve_forever(self) -> None:
        self._serving = True
        self._server.serve_forever()

    def wait(self) -> None:
        """Block until the server stops (signals still reach the calling thread)."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the first SIGINT, SIGTERM or SIGHUP into ``KeyboardInterrupt``, so a
    ``finally`` that stops the embedded servers runs however the process is told to stop.

    Only the first: the rest are swallowed while the stop runs. ``make`` passes its own
    SIGTERM on to the server, so a second one often arrives at once; raised inside
    ``shut_down`` it would leave the embedded Redis running (it was, now and then).
    """
    stopping = False

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt(signal.Signals(signum).name)

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in watched}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def shut_down(container: Container | None, server: LocalServer | None) -> None:
    """Stop the server, the container's threads and pools, then the embedded servers.

    A second Ctrl-C or SIGTERM during this would leave processes behind, so both are
    ignored until it is done.
    """
    from devtools.devservers import stop_embedded

    ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if server is not None:
            with contextlib.suppress(Exception):
                server.stop()
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
            set_container(None)
        stop_embedded()
    finally:
        for sig, handler in ignored.items():
            signal.signal(sig, handler)
