"""Any service speaking the OpenAI chat-completions wire format (the fallback provider).

``POST {base_url}/chat/completions`` with ``model``, ``messages``, ``max_tokens``,
``temperature``, ``top_p``; the answer is ``choices[0].message.content`` with ``usage
{prompt_tokens, completion_tokens}``. Many providers and gateways speak it, so the
base URL, model and key come from settings (``FALLBACK_AI_*``).

Retries, the deadline, token accounting and logs are the generic client's
(``shared.ai.client``). Classification, per attempt:

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

from typing import Any, Final

from shared.ai.client import AIClient
from shared.ai.wire import (
    Reply,
    Wire,
    common_fields,
    http_status_kind,
    load_json,
    message_content,
    retry_after_s,
)

__all__ = ["OPENAI_ENDPOINT", "OPENAI_WIRE", "OpenAICompatClient", "interpret_openai_response"]

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
    payload = load_json(body)
    common = common_fields(status, payload, trace_id)
    if not 200 <= status < 300:
        kind, code = http_status_kind(status)
        return Reply(kind, code=code, retry_after_s=retry_after_s(retry_after), **common)
    if not isinstance(payload, dict):
        return Reply("transient", **common)  # a 200 that is not JSON: something in between
    error_code = _error_code(payload)
    if error_code is not None:
        if 400 <= error_code < 600:
            kind, code = http_status_kind(error_code)
            return Reply(kind, code=code, **common)
        return Reply("transient", **common)
    if _finish_reason(payload) == "content_filter":
        return Reply("sensitive_output", **common)
    content = message_content(payload)
    if content is None:
        return Reply("bad_output", reason="empty choices or content", **common)
    return Reply("ok", content=content, **common)


def _body(
    model: str, messages: list[dict[str, str]], max_tokens: int, temperature: float
) -> dict[str, Any]:
    return {
        "model": model,
        "messages": messages,
        "stream": False,
        # max_tokens: the field every compatible server accepts (OpenAI's own newer
        # max_completion_tokens is not understood by many gateways).
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": _TOP_P,
    }


OPENAI_WIRE: Final = Wire(
    name="openai-compatible",
    label="The fallback provider",
    endpoint=OPENAI_ENDPOINT,
    trace_header="x-request-id",  # OpenAI's and most gateways' call id
    body=_body,
    interpret=interpret_openai_response,
)


class OpenAICompatClient(AIClient):
    """``AIClient`` over the OpenAI chat-completions wire (the fallback provider; its
    ledger name is ``provider=``, ``FALLBACK_AI_PROVIDER``)."""

    wire = OPENAI_WIRE
