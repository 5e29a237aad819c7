"""What a provider module gives the generic client (``shared.ai.client.AIClient``).

``Wire`` is one provider's HTTP dialect: the endpoint, the request body, the classifier of
one answer into a ``Reply`` and the header that identifies a call. Everything else — the
retry, jitter, budget and deadline policy, the HTTP client, token accounting and logs — is
the client's, the same for every provider.

The helpers below are the parts of classification that providers share (the HTTP status
table, ``Retry-After``, OpenAI-style ``usage`` and ``choices``).
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from shared.ai.errors import PROVIDER_AUTH, PROVIDER_BAD_REQUEST, PROVIDER_BALANCE

__all__ = [
    "Interpret",
    "Reply",
    "ReplyKind",
    "Wire",
    "common_fields",
    "http_status_kind",
    "load_json",
    "message_content",
    "retry_after_s",
    "usage_tokens",
]

ReplyKind = Literal["ok", "transient", "permanent", "bad_output", "sensitive_output"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One attempt's classified answer. ``content`` is only set when ``kind == "ok"``."""

    kind: ReplyKind
    status: int | None = None
    base_code: int | None = None  # the provider's in-band error code, if it has one
    code: str | None = None  # our error code for permanent replies
    reason: str = ""  # why the output was unusable (never quotes it)
    content: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_after_s: float | None = None
    trace_id: str | None = None
    timed_out: bool = False


class Interpret(Protocol):
    """Type of a provider's classifier: ``(status, body, *, retry_after, trace_id) -> Reply``."""

    def __call__(
        self, status: int, body: bytes, *, retry_after: str | None, trace_id: str | None
    ) -> Reply: ...


@dataclass(frozen=True, slots=True)
class Wire:
    """One provider's HTTP dialect (see the module doc). Adding a provider is one of these."""

    name: str  # the provider name the ledger records
    label: str  # how error messages name it ("MiniMax rejected the API key")
    endpoint: str  # POSTed to, relative to the base URL
    trace_header: str  # the response header that identifies the call
    # (model, messages, max_tokens, temperature) -> the JSON request body
    body: Callable[[str, list[dict[str, str]], int, float], dict[str, Any]]
    interpret: Interpret  # classifies one HTTP answer
    default_base_url: str = ""
    default_model: str = ""
    # In-band codes that mean "rate limited" (counted by provider_rate_limited with HTTP 429).
    rate_limit_codes: frozenset[int] = frozenset()

    def rate_limited(self, reply: Reply) -> bool:
        return reply.status == 429 or reply.base_code in self.rate_limit_codes


def load_json(body: bytes) -> object:
    """The decoded body, or None when it is not JSON."""
    try:
        payload: object = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    return payload


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_tokens(payload: Mapping[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens of an OpenAI-style ``usage`` object (0 when absent)."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def message_content(payload: Mapping[str, Any]) -> str | None:
    """``choices[0].message.content`` when it is a non-blank string, else None."""
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) and content.strip() else None


def http_status_kind(status: int) -> tuple[ReplyKind, str | None]:
    """Transient (408, 429, 5xx) or permanent with our code (401/403, 402, other)."""
    if status in (408, 429) or status >= 500:
        return "transient", None
    code = {401: PROVIDER_AUTH, 403: PROVIDER_AUTH, 402: PROVIDER_BALANCE}.get(
        status,
        PROVIDER_BAD_REQUEST,  # 400, 422, any other 4xx, unexpected 1xx/3xx
    )
    return "permanent", code


def common_fields(status: int, payload: object, trace_id: str | None) -> dict[str, Any]:
    """The ``Reply`` fields every answer carries: status, tokens, trace id."""
    tokens = usage_tokens(payload) if isinstance(payload, dict) else (0, 0)
    return {
        "status": status,
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "trace_id": trace_id,
    }
