"""QStash test doubles: signing keys, and local HTTP endpoints that record what they get.

``StubServer`` is a real HTTP server on 127.0.0.1 (ephemeral port) answering from a
script; ``WorkerStub`` adds what our worker does first: verify ``Upstash-Signature``
with ``SignatureVerifier`` against the exact URL it was reached at, each token once
(401 otherwise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx

from shared.errors import Unauthenticated
from shared.queue.signing import SignatureVerifier

# 64 bytes: PyJWT warns about HMAC keys shorter than the hash (32 bytes for HS256, 64 for
# the HS512 token a test forges), and the test suite turns warnings into errors.
TEST_CURRENT_KEY = "sig_test_current_" + "c" * 47
TEST_NEXT_KEY = "sig_test_next_" + "n" * 50


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: httpx.Headers
    body: bytes
    at: float  # time.monotonic() on arrival
    verified: bool | None = None  # WorkerStub only: did the signature check pass


@dataclass(frozen=True)
class StubResponse:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # or wait on `hold` before answering
    hold: threading.Event | None = None


Responder = Callable[[RecordedRequest], StubResponse]


def scripted(*responses: StubResponse) -> Responder:
    """Answer with ``responses`` in order, repeating the last one forever."""
    lock = threading.Lock()
    remaining = list(responses)

    def respond(_: RecordedRequest) -> StubResponse:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return respond


def by_path(routes: dict[str, Responder], default: Responder | None = None) -> Responder:
    fallback = default or scripted(StubResponse(404))
    return lambda request: routes.get(request.path, fallback)(request)


class StubServer:
    """A threaded HTTP server on 127.0.0.1 that records every request."""

    def __init__(self, responder: Responder) -> None:
        self._responder = responder
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # Handler threads are joined by server_close(), so no thread outlives the test.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-http"
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout_s: float = 10.0) -> bool:
        """Wait until ``count`` requests (to ``path``, if given) have arrived."""

        def enough() -> bool:
            matching = [r for r in self._requests if path is None or r.path == path]
            return len(matching) >= count

        with self._lock:
            return self._lock.wait_for(enough, timeout_s)

    def record(self, request: RecordedRequest) -> StubResponse:
        response = self.respond(request)
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
        return response

    def respond(self, request: RecordedRequest) -> StubResponse:
        return self._responder(request)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers=httpx.Headers(dict(self.headers.items())),
                    body=self.rfile.read(length),
                    at=time.monotonic(),
                )
                answer = stub.record(request)
                if answer.hold is not None:
                    answer.hold.wait(10)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        return Handler


class MemoryTokenLedger:
    """``TokenLedger`` in a dict (thread-safe): each token id is accepted once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ttls: dict[str, int] = {}

    def first_use(self, token_id: str, ttl_s: int) -> bool:
        with self._lock:
            if token_id in self.ttls:
                return False
            self.ttls[token_id] = ttl_s
            return True


class WorkerStub(StubServer):
    """A worker endpoint that verifies QStash signatures (each token once, like our
    worker), then answers from ``responder``."""

    def __init__(
        self,
        responder: Responder,
        keys: Sequence[str] = (TEST_CURRENT_KEY, TEST_NEXT_KEY),
    ) -> None:
        super().__init__(responder)
        self.ledger = MemoryTokenLedger()
        self._verifier = SignatureVerifier(keys[0], keys[1], ledger=self.ledger)

    def record(self, request: RecordedRequest) -> StubResponse:
        try:
            self._verifier.verify(
                request.headers.get("Upstash-Signature"), request.body, self.url + request.path
            )
            verified = True
        except Unauthenticated:
            verified = False
        checked = RecordedRequest(**{**request.__dict__, "verified": verified})
        response = self.respond(checked) if verified else StubResponse(401)
        with self._lock:
            self._requests.append(checked)
            self._lock.notify_all()
        return response
