"""The AI client's one exception, ``ProviderError``, and its codes.

    ProviderError                code, transient, status, base_code, tokens spent so far
      PROVIDER_AUTH              HTTP 401/403, base_resp 1004/2049             permanent
      PROVIDER_BALANCE           HTTP 402, base_resp 1008                      permanent
      PROVIDER_CONTENT_POLICY    base_resp 1026/1027, input/output_sensitive   permanent
      PROVIDER_BAD_REQUEST       HTTP 400/422/other 4xx, base_resp 1042/2013   permanent
      PROVIDER_BAD_OUTPUT        unusable answer twice in a row                permanent
      PROVIDER_RATE_LIMITED      base_resp 2056 (usage window)                 permanent
      PROVIDER_TIMEOUT           the job's deadline left no room for an answer transient
      PROVIDER_UNAVAILABLE       transient errors until attempts ran out       transient

``transient`` tells the caller whether running the whole job again later may succeed.
Messages never contain prompts, model output or keys, so they are safe to log and to
show to users.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "PROVIDER_AUTH",
    "PROVIDER_BAD_OUTPUT",
    "PROVIDER_BAD_REQUEST",
    "PROVIDER_BALANCE",
    "PROVIDER_CONTENT_POLICY",
    "PROVIDER_RATE_LIMITED",
    "PROVIDER_TIMEOUT",
    "PROVIDER_UNAVAILABLE",
    "ProviderError",
]

PROVIDER_AUTH: Final = "PROVIDER_AUTH"
PROVIDER_BALANCE: Final = "PROVIDER_BALANCE"
PROVIDER_CONTENT_POLICY: Final = "PROVIDER_CONTENT_POLICY"
PROVIDER_BAD_REQUEST: Final = "PROVIDER_BAD_REQUEST"
PROVIDER_BAD_OUTPUT: Final = "PROVIDER_BAD_OUTPUT"
PROVIDER_RATE_LIMITED: Final = "PROVIDER_RATE_LIMITED"
PROVIDER_TIMEOUT: Final = "PROVIDER_TIMEOUT"
PROVIDER_UNAVAILABLE: Final = "PROVIDER_UNAVAILABLE"

_TRANSIENT_CODES: Final = frozenset({PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE})


class ProviderError(Exception):
    """The provider could not produce usable variants; carries the tokens already spent."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        transient: bool | None = None,
        status: int | None = None,
        base_code: int | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        attempts: int = 0,
        trace_id: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        prior_cost_micro_usd: int = 0,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = code in _TRANSIENT_CODES if transient is None else transient
        self.status = status
        self.base_code = base_code
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.attempts = attempts
        self.trace_id = trace_id
        # Set when the tokens were spent on another model than the generation's (the
        # fallback answered); prior_cost_micro_usd is what providers that gave up before
        # it spent, already priced at their own models.
        self.provider = provider
        self.model = model
        self.prior_cost_micro_usd = prior_cost_micro_usd

    def __repr__(self) -> str:
        return (
            f"ProviderError(code={self.code!r}, transient={self.transient}, "
            f"status={self.status}, base_code={self.base_code}, attempts={self.attempts})"
        )
