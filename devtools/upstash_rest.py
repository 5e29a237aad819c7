"""A local endpoint speaking Upstash's Redis REST wire format in front of a real Redis.

No Upstash server can run here, so the REST adapter is tested against this: POST ``/``
with a JSON command array, ``/pipeline`` and ``/multi-exec`` with a 2-D array, a Bearer
token, ``Upstash-Encoding: base64`` (strings encoded, recursively in arrays; ints, nulls
and errors not), and Redis errors as HTTP 400 ``{"error": …}`` with their prefix
(``NOSCRIPT No matching script. Please use EVAL.``) restored.

Like Upstash it accepts scripts that start with ``#!lua flags=allow-key-locking`` (which
the Redis behind it may not): the line is stripped before forwarding and the SHA the
client computed over the whole text is mapped to the server's, so EVALSHA keeps working
after EVAL or SCRIPT LOAD. ``forget_scripts()`` drops that mapping — to this endpoint's
clients it looks exactly like ``SCRIPT FLUSH``, without touching a shared Redis.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SHEBANG = "#!lua flags=allow-key-locking\n"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Tests send thousands of requests; the access log would drown pytest's output."""


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _error_text(exc: ResponseError) -> str:
    code = getattr(exc, "status_code", None)
    return f"{code} {exc}" if code else f"ERR {exc}"


def _encode(value: Any, b64: bool) -> Any:
    if isinstance(value, bytes):
        if value == b"OK":
            return "OK"
        return base64.b64encode(value).decode() if b64 else value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_encode(v, b64) for v in value]
    if isinstance(value, ResponseError):
        return _error_text(value)
    return value


class UpstashRestServer:
    """Start with ``start()`` (returns the base URL); stop with ``stop()``."""

    def __init__(self, redis_url: str, token: str = "test-token") -> None:
        self.token = token
        self._pool = redis.ConnectionPool.from_url(redis_url)
        self._shas: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self.requests = 0
        self.url = ""

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> str:
        self._server = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler
        )
        self._server.request_queue_size = 512
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._pool.disconnect()

    def forget_scripts(self) -> None:
        """Make every shebang script unknown again, as a SCRIPT FLUSH would."""
        with self._lock:
            self._shas.clear()

    # ---- HTTP --------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._json({"error": "Unauthorized"}, 401)(environ, start_response)
        b64 = request.headers.get("Upstash-Encoding") == "base64"
        body = json.loads(request.get_data(as_text=True))
        path = request.path.rstrip("/")
        if path in ("/pipeline", "/multi-exec"):
            results = self._batch(body, transaction=path == "/multi-exec")
            payload: Any = [self._result(r, b64) for r in results]
            return self._json(payload, 200)(environ, start_response)
        (result,) = self._batch([body], transaction=False)
        status = 400 if isinstance(result, ResponseError) else 200
        return self._json(self._result(result, b64), status)(environ, start_response)

    @staticmethod
    def _json(payload: Any, status: int) -> Response:
        return Response(json.dumps(payload), status=status, mimetype="application/json")

    @staticmethod
    def _result(value: Any, b64: bool) -> dict[str, Any]:
        if isinstance(value, ResponseError):
            return {"error": _error_text(value)}
        return {"result": _encode(value, b64)}

    # ---- Redis -------------------------------------------------------------------------

    def _batch(self, commands: list[list[Any]], *, transaction: bool) -> list[Any]:
        conn = self._pool.get_connection()
        try:
            if not transaction:
                return [self._run(conn, cmd) for cmd in commands]
            self._call(conn, ["MULTI"])
            for cmd in commands:
                self._run(conn, cmd)
            result = self._call(conn, ["EXEC"])
            return list(result) if isinstance(result, list) else [result]
        except RedisConnectionError:
            conn.disconnect()
            raise
        finally:
            self._pool.release(conn)

    def _run(self, conn: Any, raw: list[Any]) -> Any:
        cmd = self._rewrite(raw)
        result = self._call(conn, cmd)
        is_load = cmd[0].upper() == "SCRIPT" and cmd[1].upper() == "LOAD"
        if is_load and isinstance(result, bytes) and str(raw[2]).startswith(SHEBANG):
            return _sha(str(raw[2])).encode()  # the client's SHA, as Upstash answers
        return result

    @staticmethod
    def _call(conn: Any, cmd: list[str]) -> Any:
        conn.send_command(*cmd)
        try:
            return conn.read_response()
        except ResponseError as exc:
            return exc

    def _rewrite(self, raw: list[Any]) -> list[str]:
        cmd = [str(part) for part in raw]
        name = cmd[0].upper()
        is_load = name == "SCRIPT" and len(cmd) > 2 and cmd[1].upper() == "LOAD"
        if name == "EVAL" or is_load:
            index = 2 if is_load else 1
            cmd[index] = self._strip(cmd[index])
        elif name == "EVALSHA":
            with self._lock:
                cmd[1] = self._shas.get(cmd[1].lower(), cmd[1])
        elif name == "SCRIPT" and cmd[1].upper() == "FLUSH":
            self.forget_scripts()
        return cmd

    def _strip(self, source: str) -> str:
        if not source.startswith(SHEBANG):
            return source
        stripped = source[len(SHEBANG) :]
        with self._lock:
            self._shas[_sha(source)] = _sha(stripped)
        return stripped


def make_port(kind: str, redis_url: str, server: UpstashRestServer | None) -> Any:
    """A ``RedisPort`` of ``kind`` ("tcp" or "upstash", the latter through ``server``)."""
    from shared.redis import TcpRedis, UpstashRedis

    if kind == "tcp":
        return TcpRedis.from_url(redis_url, timeout_s=10)
    assert server is not None
    return UpstashRedis(server.url, server.token, timeout_s=30)
