"""The one AI client: retries, jitter, budget and deadline over any provider's ``Wire``.

A provider module (``shared.ai.providers``) classifies each answer into ok, transient,
permanent or unusable output; this client decides what that means for the job, the same
for every provider:

- **transient** answers (and timeouts, connection errors) are retried with full-jitter
  backoff, or after exactly the server's ``Retry-After``, up to ``max_attempts`` calls,
  then ``PROVIDER_UNAVAILABLE``;
- **permanent** answers are raised at once with the provider's code;
- **unusable output** is asked again once (the user turn names the problem), then
  ``PROVIDER_BAD_OUTPUT``; a **sensitive output** refusal is asked again once, then
  ``PROVIDER_CONTENT_POLICY``;
- nothing ever waits past the job's deadline: when the next attempt cannot fit,
  ``PROVIDER_TIMEOUT`` is raised.

Tokens reported in ``usage`` are summed over every attempt, failed ones included, and
travel on the ``Completion`` or the ``ProviderError``. Logs (``reel.ai``) carry the
attempt number, HTTP status, in-band code, trace id and latency — never prompts, outputs
or the key. httpx errors are translated here.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import ClassVar, Final

import httpx

from shared.ai.errors import (
    PROVIDER_AUTH,
    PROVIDER_BAD_OUTPUT,
    PROVIDER_BAD_REQUEST,
    PROVIDER_BALANCE,
    PROVIDER_CONTENT_POLICY,
    PROVIDER_RATE_LIMITED,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    ProviderError,
)
from shared.ai.parsing import parse_completion
from shared.ai.prompts import build_messages, temperature_for
from shared.ai.types import Completion, GenerationJob
from shared.ai.wire import Reply, Wire

__all__ = ["AIClient", "full_jitter_backoff_s"]

logger = logging.getLogger("reel.ai")

_MESSAGES: Final[dict[str, str]] = {
    PROVIDER_AUTH: "{name} rejected the API key",
    PROVIDER_BALANCE: "{name} account balance is insufficient",
    PROVIDER_CONTENT_POLICY: "{name} refused the content (sensitive input or output)",
    PROVIDER_BAD_REQUEST: "{name} rejected the request as invalid",
    PROVIDER_RATE_LIMITED: "{name} usage window is exhausted",
    PROVIDER_UNAVAILABLE: "{name} kept failing with transient errors",
    PROVIDER_TIMEOUT: "{name} did not answer within the job's time limit",
}

# A chat completion is a few KiB; anything near this is not an answer we can use, and the
# cap keeps a misbehaving upstream from filling the instance's memory.
_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
# The model may be asked again once after an unusable answer (SPEC §5) and once after an
# output-sensitive refusal (REFERENCE.md: 1027, at most one retry).
_BAD_OUTPUT_RETRIES: Final = 1
_SENSITIVE_OUTPUT_RETRIES: Final = 1
# Caps the exponent so base * 2**n cannot overflow a float with absurd attempt counts.
_MAX_BACKOFF_EXPONENT: Final = 32


def full_jitter_backoff_s(
    retry_index: int, *, base_s: float, cap_s: float, rng: Callable[[], float]
) -> float:
    """Full-jitter delay before retry ``retry_index`` (0 first): ``rng() * min(cap, base*2**i)``."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(retry_index, 0), _MAX_BACKOFF_EXPONENT))
    return rng() * ceiling


class _Budget:
    """Tokens and attempts spent on one job so far."""

    def __init__(self, label: str, provider: str, model: str) -> None:
        self.label = label
        self.provider, self.model = provider, model
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.attempts = 0
        self.transient_failures = 0
        self.bad_outputs = 0
        self.sensitive_outputs = 0
        self.trace_id: str | None = None

    def add(self, reply: Reply) -> None:
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        self.trace_id = reply.trace_id or self.trace_id

    def error(self, code: str, reply: Reply | None = None, detail: str = "") -> ProviderError:
        status = reply.status if reply else None
        base_code = reply.base_code if reply else None
        where = ", ".join(
            part
            for part in (
                f"HTTP {status}" if status is not None else "",
                f"base_resp {base_code}" if base_code else "",
                f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}",
            )
            if part
        )
        message = detail or _MESSAGES.get(code, "{name} call failed").format(name=self.label)
        return ProviderError(
            code,
            f"{message} ({where}).",
            status=status,
            base_code=base_code,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            attempts=self.attempts,
            trace_id=self.trace_id,
            provider=self.provider or None,
            model=self.model or None,
        )


class AIClient:
    """``LLMPort`` over one provider's ``wire``; thread-safe, one lazily built httpx client.

    A provider module subclasses it with its ``Wire`` (``class MiniMaxClient(AIClient):
    wire = MINIMAX_WIRE``) and adds nothing else.
    """

    wire: ClassVar[Wire]

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str,
        model: str,
        max_tokens: int,
        provider: str | None = None,
        transport: httpx.BaseTransport | None = None,
        connect_timeout_s: float = 5,
        read_timeout_s: float = 60,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8,
        min_attempt_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_key.strip():
            raise ValueError("api_key is empty")
        if max_attempts < 1 or max_tokens < 1:
            raise ValueError("max_attempts and max_tokens must be >= 1")
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("base_url must be an absolute http(s) URL")
        wire = self.wire
        self.provider = provider or wire.name  # what the ledger records
        self.label = wire.label  # in error messages
        self.model = model
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._max_tokens = max_tokens
        self._transport = transport
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s
        self._min_attempt_s = min_attempt_s
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self._base_url!r})"

    def _http(self) -> httpx.Client:
        # Double-checked so concurrent first calls (gunicorn threads) build one client.
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        base_url=self._base_url,
                        transport=self._transport,
                        headers={
                            "Authorization": f"Bearer {self._api_key}",
                            "Content-Type": "application/json",
                        },
                        follow_redirects=False,
                    )
        return self._client

    def close(self) -> None:
        """Close the pooled connections (the client is rebuilt on next use)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        """Write ``job``'s variants; raises ``ProviderError`` (tokens spent included)."""
        temperature = temperature_for(job)
        budget = _Budget(self.label, self.provider, self.model)
        retry_reason: str | None = None
        while True:
            if self._clock() >= deadline:
                raise budget.error(PROVIDER_TIMEOUT)
            body = self._body(build_messages(job, retry_reason=retry_reason), temperature)
            budget.attempts += 1
            reply = self._attempt(body, deadline, budget.attempts)
            budget.add(reply)
            if reply.kind == "ok":
                try:
                    variants = parse_completion(reply.content, job)
                except ProviderError as exc:
                    reply = Reply("bad_output", status=reply.status, reason=exc.message)
                else:
                    return Completion(
                        variants=variants,
                        provider=self.provider,
                        model=self.model,
                        prompt_tokens=budget.prompt_tokens,
                        completion_tokens=budget.completion_tokens,
                        attempts=budget.attempts,
                        trace_id=budget.trace_id,
                    )
            if reply.kind == "bad_output":
                retry_reason = reply.reason.rstrip(".")
            if reply.kind == "transient" and self._clock() >= deadline:
                raise budget.error(PROVIDER_TIMEOUT, reply)
            delay_s = self._delay_before_retry(reply, budget)
            if self._clock() + delay_s + self._min_attempt_s > deadline:
                raise budget.error(PROVIDER_TIMEOUT, reply)
            self._sleep(delay_s)

    def _delay_before_retry(self, reply: Reply, budget: _Budget) -> float:
        """Seconds to wait before asking again, or raise when this failure is final."""
        if reply.kind == "permanent":
            raise budget.error(reply.code or PROVIDER_BAD_REQUEST, reply)
        if reply.kind == "bad_output":
            budget.bad_outputs += 1
            if budget.bad_outputs > _BAD_OUTPUT_RETRIES:
                raise budget.error(PROVIDER_BAD_OUTPUT, reply, reply.reason.rstrip("."))
            return 0.0
        if reply.kind == "sensitive_output":
            budget.sensitive_outputs += 1
            if budget.sensitive_outputs > _SENSITIVE_OUTPUT_RETRIES:
                raise budget.error(PROVIDER_CONTENT_POLICY, reply)
            return 0.0
        budget.transient_failures += 1
        if budget.transient_failures >= self._max_attempts:
            raise budget.error(PROVIDER_UNAVAILABLE, reply)
        if reply.retry_after_s is not None:
            return reply.retry_after_s
        return full_jitter_backoff_s(
            budget.transient_failures - 1,
            base_s=self._backoff_base_s,
            cap_s=self._backoff_cap_s,
            rng=self._rng,
        )

    def _body(self, messages: list[dict[str, str]], temperature: float) -> bytes:
        payload = self.wire.body(self.model, messages, self._max_tokens, temperature)
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def _timeout(self, deadline: float) -> httpx.Timeout:
        remaining = max(0.001, deadline - self._clock())
        connect = min(self._connect_timeout_s, remaining)
        read = min(self._read_timeout_s, remaining)
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)

    def _attempt(self, body: bytes, deadline: float, attempt: int) -> Reply:
        started = self._clock()
        try:
            reply = self._send(body, deadline)
        except httpx.TimeoutException:
            reply = Reply("transient", timed_out=True)
        except httpx.TransportError:
            reply = Reply("transient")
        latency_ms = round((self._clock() - started) * 1000)
        _log(self.provider, attempt, reply, latency_ms=latency_ms, wire=self.wire)
        return reply

    def _send(self, body: bytes, deadline: float) -> Reply:
        client = self._http()
        request = client.build_request(
            "POST", self.wire.endpoint, content=body, timeout=self._timeout(deadline)
        )
        response = client.send(request, stream=True)
        try:
            trace_id = response.headers.get(self.wire.trace_header)
            raw = bytearray()
            for chunk in response.iter_bytes():
                raw += chunk
                if self._clock() > deadline:
                    # A server trickling bytes must not stretch the job past its deadline.
                    return Reply("transient", status=response.status_code, timed_out=True)
                if len(raw) > _MAX_BODY_BYTES:
                    return Reply(
                        "bad_output", status=response.status_code, reason="response too large"
                    )
        finally:
            response.close()
        return self.wire.interpret(
            response.status_code,
            bytes(raw),
            retry_after=response.headers.get("Retry-After"),
            trace_id=trace_id,
        )


def _log(provider: str, attempt: int, reply: Reply, *, latency_ms: int, wire: Wire) -> None:
    level = logging.INFO if reply.kind == "ok" else logging.WARNING
    logger.log(
        level,
        "%s attempt=%d outcome=%s status=%s base_code=%s trace_id=%s latency_ms=%d%s",
        provider,
        attempt,
        reply.kind,
        reply.status,
        reply.base_code,
        reply.trace_id,
        latency_ms,
        " timed_out" if reply.timed_out else "",
        extra={
            "fields": {
                "event": "provider_attempt",
                "provider": provider,
                "attempt": attempt,
                "outcome": reply.kind,
                "http_status": reply.status,
                "base_code": reply.base_code,
                "provider_trace_id": reply.trace_id,
                "latency_ms": latency_ms,
            }
        },
    )
    if wire.rate_limited(reply):
        # Counted by the log-based metric provider_rate_limited (terraform/monitoring.tf).
        logger.warning(
            "provider_rate_limited",
            extra={
                "fields": {
                    "event": "provider_rate_limited",
                    "provider": provider,
                    "http_status": reply.status,
                    "base_code": reply.base_code,
                    "attempt": attempt,
                }
            },
        )
