"""A real local HTTP server speaking MiniMax's native chat completion wire format.

Each test scripts the answers it wants, in order, and inspects the requests received::

    with FakeMiniMax() as fake:
        fake.push(http_error(429, retry_after=0), ok(variants=[variant(1)]))
        client = MiniMaxClient("k", base_url=fake.url, model="MiniMax-M2.5", max_tokens=512)
        ...
        assert fake.requests[0].headers["authorization"] == "Bearer k"

When the queue is empty the server answers ``default`` (if given), else asks
``responder`` (``answer_prompt`` writes what the prompt asks for: as many variants, or
only the fields a targeted rewrite names), else answers HTTP 500 and counts the request
in ``unexpected``. Only ``POST /v1/text/chatcompletion_v2`` is served; any
other path gets 404 (recorded too).

``FakeOpenAI`` is the same server on the OpenAI chat-completions path
(``POST /v1/chat/completions``, base URL ``…/v1``): the second provider of a fallback. It
takes the same answer builders (failure markers): ``ok`` bodies are valid
chat-completions answers (the extra ``base_resp`` is ignored there), ``http_error`` is a
real HTTP status, and ``openai_error`` / ``content_filtered`` build that format's own
error shapes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "ENDPOINT_PATH",
    "OPENAI_PATH",
    "FakeMiniMax",
    "FakeOpenAI",
    "RecordedRequest",
    "Responder",
    "Scripted",
    "answer_prompt",
    "base_error",
    "content_answer",
    "content_filtered",
    "delayed",
    "empty_choices",
    "http_error",
    "malformed",
    "ok",
    "openai_error",
    "sensitive",
    "variant",
    "variants_json",
]

ENDPOINT_PATH = "/v1/text/chatcompletion_v2"
OPENAI_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: status, JSON body (dict) or raw bytes, headers, delay first."""

    status: int = 200
    body: Mapping[str, Any] | bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake received; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any  # parsed JSON, or None when the body was not JSON


# ---------------------------------------------------------------- answer builders


def variant(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid variant dict (``n`` makes the text distinct); ``overrides`` replace fields."""
    item: dict[str, Any] = {
        "hook": f"Hook {n}: you are drinking water wrong",
        "script": f"Script {n}: three reasons to drink more water, said upbeat.",
        "caption": f"Caption {n}: hydrate and feel better.",
        "hashtags": ["#water", f"#tip{n}", "health"],
    }
    item.update(overrides)
    return item


def variants_json(variants: Iterable[Mapping[str, Any]]) -> str:
    """The model's JSON answer text for ``variants``."""
    return json.dumps({"variants": list(variants)}, ensure_ascii=False)


def _completion(
    content: str | None,
    *,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    base_code: int = 0,
    base_msg: str = "success",
    choices: list[Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "fake-completion",
        "object": "chat.completion",
        "model": "MiniMax-M2.5",
        "choices": choices
        if choices is not None
        else [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "name": "MiniMax AI"},
            }
        ],
        "input_sensitive": False,
        "output_sensitive": False,
        "base_resp": {"status_code": base_code, "status_msg": base_msg},
        **extra,
    }
    if prompt_tokens is not None or completion_tokens is not None:
        p, c = prompt_tokens or 0, completion_tokens or 0
        body["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
    return body


def content_answer(
    content: str,
    *,
    prompt_tokens: int | None = 100,
    completion_tokens: int | None = 200,
    trace_id: str | None = None,
) -> Scripted:
    """HTTP 200 success whose ``message.content`` is exactly ``content``."""
    body = _completion(content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return Scripted(200, body, {"Trace-Id": trace_id} if trace_id else {})


def ok(
    variants: Iterable[Mapping[str, Any]] | None = None,
    *,
    count: int = 1,
    prompt_tokens: int | None = 100,
    completion_tokens: int | None = 200,
    trace_id: str | None = None,
    think: bool = False,
    fenced: bool = False,
) -> Scripted:
    """A good answer: ``variants`` (default ``count`` generated ones), optionally wrapped in a
    ``<think>`` block and/or a fenced json block with prose around it."""
    items = list(variants) if variants is not None else [variant(i + 1) for i in range(count)]
    content = variants_json(items)
    if fenced:
        content = f"Here you go:\n```json\n{content}\n```\nHope this helps!"
    if think:
        content = (
            '<think>The user wants {reels}. Draft: {"variants": []} is wrong.</think>\n' + content
        )
    return content_answer(
        content,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        trace_id=trace_id,
    )


def http_error(
    status: int, *, retry_after: float | str | None = None, trace_id: str | None = None
) -> Scripted:
    """A real HTTP error status (e.g. 401, 429 with Retry-After, 500/502/503)."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if trace_id:
        headers["Trace-Id"] = trace_id
    body = {"base_resp": {"status_code": status, "status_msg": "fake http error"}}
    return Scripted(status, body, headers)


def base_error(
    code: int,
    msg: str = "fake base_resp error",
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    **extra: Any,
) -> Scripted:
    """HTTP 200 with ``base_resp.status_code == code`` (1002 rate limit, 1004 auth, …)."""
    body = _completion(
        None,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        base_code=code,
        base_msg=msg,
        choices=[],
        **extra,
    )
    return Scripted(200, body)


def sensitive(*, output: bool = True, code: int | None = None) -> Scripted:
    """HTTP 200 flagged ``output_sensitive`` (or ``input_sensitive``), code 1027/1026."""
    flag = "output_sensitive" if output else "input_sensitive"
    return base_error(code or (1027 if output else 1026), "sensitive", **{flag: True})


def empty_choices(*, prompt_tokens: int | None = 50, completion_tokens: int | None = 0) -> Scripted:
    """HTTP 200, base_resp 0, but no choices."""
    body = _completion(
        None, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, choices=[]
    )
    return Scripted(200, body)


def malformed(
    text: str = 'Sure! Here are your reels: {"variants": [{"hook": "unterminated',
    *,
    prompt_tokens: int | None = 100,
    completion_tokens: int | None = 50,
) -> Scripted:
    """HTTP 200 whose content is not usable JSON."""
    return content_answer(text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


def openai_error(status: int, *, code: int | str | None = None) -> Scripted:
    """An OpenAI-format error: HTTP ``status`` with ``{"error": {...}}``; ``status`` 200 and a
    ``code`` is the in-band error some gateways send."""
    error = {"message": "fake error", "type": "server_error", "code": code}
    return Scripted(status, {"error": error})


def content_filtered(*, prompt_tokens: int | None = 40) -> Scripted:
    """HTTP 200 whose one choice ended with ``finish_reason: content_filter``."""
    choice = {
        "index": 0,
        "finish_reason": "content_filter",
        "message": {"role": "assistant", "content": ""},
    }
    body = _completion(None, prompt_tokens=prompt_tokens, completion_tokens=0, choices=[choice])
    return Scripted(200, body)


def delayed(answer: Scripted, delay_s: float) -> Scripted:
    """``answer``, sent only after ``delay_s`` seconds (for read-timeout and deadline tests)."""
    return dataclasses.replace(answer, delay_s=delay_s)


_COUNT_RE = re.compile(r"Return exactly (\d+) object")
_KEYS_RE = re.compile(r"with only the keys: ([a-z, ]+)\.")


def answer_prompt(request: RecordedRequest) -> Scripted:
    """A good answer to what the request's user message asks for: ``n`` variants, or one
    variant holding only the fields a targeted rewrite names."""
    messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
    task = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
    count = _COUNT_RE.search(task)
    keys = _KEYS_RE.search(task)
    if keys:
        fresh = variant(1)
        wanted = [k.strip() for k in keys.group(1).split(",")]
        return ok([{k: f"{fresh[k]} (rewritten)" if k != "hashtags" else fresh[k] for k in wanted}])
    return ok(count=int(count.group(1)) if count else 1)


# ---------------------------------------------------------------- the server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping on a delay must not block stop()

    def __init__(self, fake: FakeMiniMax) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up (timeouts are the point of some tests)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fake = self.server.fake
        answer = fake._record_and_pop(
            RecordedRequest(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                raw=raw,
                body=body,
            )
        )
        if answer.delay_s and fake._stopping.wait(answer.delay_s):
            return  # the fake is shutting down
        payload = (
            answer.body
            if isinstance(answer.body, bytes)
            else json.dumps(answer.body, ensure_ascii=False).encode()
        )
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting (read timeout tests)


Responder = Callable[[RecordedRequest], Scripted]


class FakeMiniMax:
    """Context manager running the fake on 127.0.0.1 with an ephemeral port."""

    path = ENDPOINT_PATH

    def __init__(
        self, *, default: Scripted | None = None, responder: Responder | None = None
    ) -> None:
        self.default = default
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self.unexpected = 0
        self._queue: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._trace_ids = itertools.count(1)

    @property
    def url(self) -> str:
        """Base URL to pass as the client's ``base_url``."""
        if self._server is None:
            raise RuntimeError("FakeMiniMax is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def calls(self) -> int:
        """Requests received on the chat completion endpoint."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == self.path)

    def push(self, *answers: Scripted) -> FakeMiniMax:
        """Queue answers, served in order, one per request."""
        with self._lock:
            self._queue.extend(answers)
        return self

    def pending(self) -> int:
        """Scripted answers not served yet."""
        with self._lock:
            return len(self._queue)

    def _record_and_pop(self, request: RecordedRequest) -> Scripted:
        with self._lock:
            self.requests.append(request)
            if request.path != self.path or request.method != "POST":
                return Scripted(404, {"error": "not found"})
            if self._queue:
                answer = self._queue.popleft()
            elif self.default is not None:
                answer = self.default
            elif self.responder is not None:
                answer = self.responder(request)
            else:
                self.unexpected += 1
                return Scripted(500, {"error": "fake queue empty"})
        if answer.status == 200 and "Trace-Id" not in answer.headers:
            trace = f"fake-trace-{next(self._trace_ids)}"
            answer = dataclasses.replace(answer, headers={**answer.headers, "Trace-Id": trace})
        return answer

    def start(self) -> FakeMiniMax:
        """Start serving in a background thread."""
        self._stopping.clear()
        self._server = _Server(self)
        # A short poll interval keeps stop() (shutdown waits for one poll) fast per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-minimax", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed answers still pending are abandoned."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeMiniMax:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeOpenAI(FakeMiniMax):
    """The fake on the OpenAI chat-completions path; pass ``url + "/v1"`` as the base URL
    (``base_url``)."""

    path = OPENAI_PATH

    @property
    def base_url(self) -> str:
        """The client's base URL (``…/v1``, as OpenAI-compatible services publish it)."""
        return self.url + "/v1"
