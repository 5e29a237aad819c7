"""A second provider: any service speaking the OpenAI chat-completions wire format.

``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``max_tokens``,
``temperature``, ``top_p``; the answer is ``choices[0].message.content`` with ``usage
{prompt_tokens, completion_tokens}``. Many providers and gateways speak it, so the
base URL, model and key come from settings (``FALLBACK_AI_*``).

Retries, the deadline, token accounting and logs are ``MiniMaxClient``'s (this is the same
client with another endpoint and parser). Classification, per attempt:

- HTTP 408/429/5xx, timeouts, connection errors, a non-JSON 200 → transient (retried,
  ``Retry-After`` honoured, then ``PROVIDER_UNAVAILABLE``);
- 401/403 → ``PROVIDER_AUTH``; 402 → ``PROVIDER_BALANCE``; other 4xx → ``PROVIDER_BAD_REQUEST``
  (one call, never retried);
- a 200 carrying an ``error`` object (some gateways do this) → classified by its numeric
  ``code`` like an HTTP status, transient when it has none;
- ``finish_reason == "content_filter"`` → asked again once, then ``PROVIDER_CONTENT_POLICY``;
- no choices or empty content → unusable output (asked again once, then ``PROVIDER_BAD_OUTPUT``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from shared.ai.minimax import (
    MiniMaxClient,
    Reply,
    _content,
    _http_status_kind,
    _retry_after_s,
    _usage,
)

__all__ = ["OPENAI_ENDPOINT", "OpenAICompatClient", "interpret_openai_response"]

OPENAI_ENDPOINT: Final = "/chat/completions"
_TOP_P: Final = 0.95


def _error_code(payload: dict[str, Any]) -> int | None:
    error = payload.get("error")
    if not isinstance(error, dict):
        return None if error is None else 0
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _finish_reason(payload: dict[str, Any]) -> str | None:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    reason = choices[0].get("finish_reason")
    return reason if isinstance(reason, str) else None


def interpret_openai_response(
    status: int, body: bytes, *, retry_after: str | None = None, trace_id: str | None = None
) -> Reply:
    """Classify one chat-completions answer: status, then an ``error`` object, then the
    content filter, then the content."""
    try:
        payload: object = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    tokens = _usage(payload) if isinstance(payload, dict) else (0, 0)
    common: dict[str, Any] = {
        "status": status,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "trace_id": trace_id,
    }
    if not 200 <= status < 300:
        kind, code = _http_status_kind(status)
        return Reply(kind, code=code, retry_after_s=_retry_after_s(retry_after), **common)
    if not isinstance(payload, dict):
        return Reply("transient", **common)  # a 200 that is not JSON: something in between
    error_code = _error_code(payload)
    if error_code is not None:
        if 400 <= error_code < 600:
            kind, code = _http_status_kind(error_code)
            return Reply(kind, code=code, **common)
        return Reply("transient", **common)
    if _finish_reason(payload) == "content_filter":
        return Reply("sensitive_output", **common)
    content = _content(payload)
    if content is None:
        return Reply("bad_output", reason="empty choices or content", **common)
    return Reply("ok", content=content, **common)


class OpenAICompatClient(MiniMaxClient):
    """``LLMPort`` over an OpenAI-compatible chat-completions API (the fallback provider)."""

    label = "The fallback provider"
    endpoint = OPENAI_ENDPOINT
    trace_header = "x-request-id"  # OpenAI's and most gateways' call id

    def __init__(self, api_key: str, *, provider: str = "openai-compatible", **kw: Any) -> None:
        super().__init__(api_key, **kw)
        self.provider = provider

    def _body(self, messages: list[dict[str, str]], temperature: float) -> bytes:
        payload = {
            "model": self.model,
            "messages": messages,
            "stream": False,
            # max_tokens: the field every compatible server accepts (OpenAI's own newer
            # max_completion_tokens is not understood by many gateways).
            "max_tokens": self._max_tokens,
            "temperature": temperature,
            "top_p": _TOP_P,
        }
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def _interpret(
        self, status: int, body: bytes, *, retry_after: str | None, trace_id: str | None
    ) -> Reply:
        return interpret_openai_response(status, body, retry_after=retry_after, trace_id=trace_id)
