"""Structured JSON logs in Cloud Logging's shape, with context and redaction.

One JSON object per line on stdout: ``severity``, ``message``, ``time``, the context
fields bound for the current request/job (``request_id``, ``user_id``,
``generation_id``), ``logging.googleapis.com/trace`` when a trace header was seen, and
any extra fields. Every extra field passes through ``redact``: values under sensitive
key names (tokens, secrets, user content such as the brief or generated text) are
replaced, recursively, so a careless ``log_event(..., body=payload)`` cannot leak them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from shared.errors import BadRequest

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "annotate",
    "bind",
    "configure_logging",
    "context_fields",
    "exception_chain",
    "log_event",
    "new_request_id",
    "redact",
    "resolve_request_id",
    "trace_from_headers",
]

REDACTED: Final = "[redacted]"
SENSITIVE_KEYS: Final = frozenset(
    {
        "authorization", "token", "access_token", "id_token", "secret", "password", "api_key",
        "apikey", "key", "signature", "cookie", "brief", "prompt", "instructions", "script",
        "caption", "hook", "hashtags", "content", "messages", "raw", "body", "title",
    }
)  # fmt: skip
_SENSITIVE_SUFFIXES: Final = ("_token", "_secret", "_password", "_key", "_signature")
_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_CONTEXT_NAMES: Final = ("request_id", "user_id", "generation_id", "trace")
_ctx: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("reel_log_ctx")


def _is_sensitive(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return k in SENSITIVE_KEYS or k.endswith(_SENSITIVE_SUFFIXES)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every sensitive key's value replaced, at any depth."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _is_sensitive(str(k)) else redact(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    return value


def new_request_id() -> str:
    return secrets.token_hex(12)


def resolve_request_id(incoming: str | None) -> str:
    """Keep a valid incoming ``X-Request-Id``; generate one when absent.

    An invalid one raises ``BadRequest(INVALID_REQUEST_ID)``; the caller answers with a
    freshly generated id so the error can still be traced.
    """
    if incoming is None or incoming == "":
        return new_request_id()
    if not _REQUEST_ID_RE.match(incoming):
        raise BadRequest(
            "X-Request-Id must be 1-128 characters of [A-Za-z0-9._-].", code="INVALID_REQUEST_ID"
        )
    return incoming


def trace_from_headers(headers: Mapping[str, str], project: str | None) -> str | None:
    """The Cloud Logging trace resource from ``traceparent`` / ``X-Cloud-Trace-Context``."""
    trace_id = None
    if tp := headers.get("traceparent"):
        parts = tp.split("-")
        trace_id = parts[1] if len(parts) >= 3 and re.fullmatch(r"[0-9a-f]{32}", parts[1]) else None
    elif xc := headers.get("X-Cloud-Trace-Context"):
        head = xc.split("/", 1)[0]
        trace_id = head if re.fullmatch(r"[0-9a-fA-F]{1,64}", head) else None
    if trace_id is None:
        return None
    return f"projects/{project}/traces/{trace_id}" if project else trace_id


def context_fields() -> dict[str, str]:
    return dict(_ctx.get({}))


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Bind context fields (request_id, user_id, generation_id, trace) for the block."""
    current = dict(_ctx.get({}))
    current.update({k: v for k, v in fields.items() if v is not None})
    token = _ctx.set(current)
    try:
        yield
    finally:
        _ctx.reset(token)


def annotate(**fields: str | None) -> None:
    """Add fields to the CURRENT context in place (visible to the enclosing request's
    closing log line, unlike ``bind`` whose fields end with its block)."""
    current = _ctx.get(None)
    if current is None:
        _ctx.set({k: v for k, v in fields.items() if v is not None})
        return
    current.update({k: v for k, v in fields.items() if v is not None})


class JsonFormatter(logging.Formatter):
    """Cloud Logging JSON: severity, message, time, context fields, redacted extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARNING" else "WARNING",
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        ctx = context_fields()
        trace = ctx.pop("trace", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        entry.update(ctx)
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            entry.update(redact(fields))
        if record.exc_info and record.exc_info[0] is not None:
            # Types and frames only: exception messages may quote user content or driver
            # internals, and locals hold request data. Where it happened is enough to debug.
            entry["exception_type"] = record.exc_info[0].__name__
            entry["exception"] = exception_chain(record.exc_info[1])
        return json.dumps(entry, default=str, ensure_ascii=False)


_MAX_CHAIN: Final = 5
_MAX_FRAMES: Final = 50


def _frames(exc: BaseException) -> list[dict[str, Any]]:
    summary = traceback.extract_tb(exc.__traceback__, limit=-_MAX_FRAMES)
    return [
        {"file": _short_path(f.filename), "line": f.lineno, "function": f.name} for f in summary
    ]


def _short_path(filename: str) -> str:
    """Paths from the package root (``shared/api/http.py``), not the instance's layout."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    for root in ("/shared/", "/functions/", "/scripts/", "/tests/"):
        if root in filename:
            return root.lstrip("/") + filename.rsplit(root, 1)[1]
    return filename


def exception_chain(exc: BaseException | None) -> list[dict[str, Any]]:
    """The exception and its causes, outermost first: type and frames, no message."""
    chain: list[dict[str, Any]] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(exc))
        chain.append({"type": type(exc).__name__, "frames": _frames(exc)})
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return chain


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log one structured event; ``fields`` are redacted by key name."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": {"event": event, **fields}})


_configured = threading.Lock()
_done = False


def configure_logging(level: str = "INFO") -> None:
    """Send the ``reel`` loggers to stdout as JSON lines (idempotent)."""
    global _done
    with _configured:
        root = logging.getLogger("reel")
        root.setLevel(level)
        if _done:
            return
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = True
        _done = True
