"""MiniMax's native chat completion endpoint (REFERENCE.md: MiniMax).

Per attempt the answer is classified in the order REFERENCE.md prescribes — HTTP status,
then ``base_resp``, then the sensitivity flags, then empty choices/content — into ok,
transient, permanent or unusable output; the generic client (``shared.ai.client``) decides
what each means for the job (retry with jitter, ask again once, fail).
"""

from __future__ import annotations

from typing import Any, Final

from shared.ai.client import AIClient
from shared.ai.errors import (
    PROVIDER_AUTH,
    PROVIDER_BAD_REQUEST,
    PROVIDER_BALANCE,
    PROVIDER_CONTENT_POLICY,
    PROVIDER_RATE_LIMITED,
)
from shared.ai.wire import (
    Reply,
    Wire,
    common_fields,
    http_status_kind,
    load_json,
    message_content,
    retry_after_s,
)

__all__ = ["ENDPOINT", "MINIMAX_WIRE", "MiniMaxClient", "interpret_response"]

ENDPOINT: Final = "/v1/text/chatcompletion_v2"
_TOP_P: Final = 0.95

# base_resp codes (REFERENCE.md, platform.minimax.io/docs/api-reference/errorcode).
_TRANSIENT_BASE_CODES: Final = frozenset({1000, 1001, 1002, 1013, 1024, 1033, 1039, 1041, 2045})
_PERMANENT_BASE_CODES: Final[dict[int, str]] = {
    1004: PROVIDER_AUTH,
    2049: PROVIDER_AUTH,
    1008: PROVIDER_BALANCE,
    1026: PROVIDER_CONTENT_POLICY,
    1042: PROVIDER_BAD_REQUEST,
    2013: PROVIDER_BAD_REQUEST,
    2056: PROVIDER_RATE_LIMITED,  # usage-window limit: retrying within the job cannot help
}
_OUTPUT_SENSITIVE_CODE: Final = 1027
# base_resp codes that mean "rate limited" (REFERENCE.md).
_RATE_LIMIT_CODES: Final = frozenset({1002, 1039, 1041, 2045, 2056})


def _base_code(payload: dict[str, Any]) -> int:
    base = payload.get("base_resp")
    code = base.get("status_code", 0) if isinstance(base, dict) else 0
    return code if isinstance(code, int) and not isinstance(code, bool) else -1


def interpret_response(
    status: int, body: bytes, *, retry_after: str | None = None, trace_id: str | None = None
) -> Reply:
    """Classify one HTTP answer: status, then ``base_resp``, then sensitivity, then content."""
    payload = load_json(body)
    common = common_fields(status, payload, trace_id)
    if not 200 <= status < 300:
        kind, code = http_status_kind(status)
        return Reply(kind, code=code, retry_after_s=retry_after_s(retry_after), **common)
    if not isinstance(payload, dict):
        # A 200 that is not JSON comes from something in between (proxy, gateway): retry.
        return Reply("transient", **common)
    base_code = _base_code(payload)
    common["base_code"] = base_code
    if base_code != 0:
        if base_code == _OUTPUT_SENSITIVE_CODE:
            return Reply("sensitive_output", **common)
        if base_code in _PERMANENT_BASE_CODES:
            return Reply("permanent", code=_PERMANENT_BASE_CODES[base_code], **common)
        # Listed transient codes, and unknown ones: MiniMax's own 1000 "unknown error" is
        # retryable, and the attempt budget bounds the cost of being wrong.
        return Reply("transient", **common)
    if payload.get("input_sensitive") is True:
        return Reply("permanent", code=PROVIDER_CONTENT_POLICY, **common)
    if payload.get("output_sensitive") is True:
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
        "max_completion_tokens": max_tokens,
        "temperature": temperature,
        "top_p": _TOP_P,
    }


MINIMAX_WIRE: Final = Wire(
    name="minimax",
    label="MiniMax",
    endpoint=ENDPOINT,
    trace_header="Trace-Id",
    body=_body,
    interpret=interpret_response,
    default_base_url="https://api.minimax.io",
    default_model="MiniMax-M2.5",
    rate_limit_codes=_RATE_LIMIT_CODES,
)


class MiniMaxClient(AIClient):
    """``AIClient`` over MiniMax's wire."""

    wire = MINIMAX_WIRE
