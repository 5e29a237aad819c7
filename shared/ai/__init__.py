"""AI client: turn a ``GenerationJob`` into validated variants through an ``LLMPort``.

``AIClient`` talks to a provider over HTTP (retries, jitter, budget, deadline, token
accounting) in that provider's wire format (``shared.ai.providers``: ``MiniMaxClient``,
``OpenAICompatClient``); ``llm_from_settings`` picks the ``AI_PROVIDER``'s; in
development ``devtools.compose`` passes the deterministic demo writer
(``devtools.offline_writer.OfflineWriter``) instead.
Every failure is a ``ProviderError`` (see ``shared.ai.errors`` for the codes).
"""

from shared.ai.client import AIClient
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
from shared.ai.factory import llm_from_settings
from shared.ai.parsing import parse_completion
from shared.ai.pricing import cost_micro_usd
from shared.ai.prompts import build_messages
from shared.ai.providers.minimax import MiniMaxClient
from shared.ai.types import FIELDS, Completion, GenerationJob, LLMPort, VariantContent

__all__ = [
    "FIELDS",
    "PROVIDER_AUTH",
    "PROVIDER_BAD_OUTPUT",
    "PROVIDER_BAD_REQUEST",
    "PROVIDER_BALANCE",
    "PROVIDER_CONTENT_POLICY",
    "PROVIDER_RATE_LIMITED",
    "PROVIDER_TIMEOUT",
    "PROVIDER_UNAVAILABLE",
    "AIClient",
    "Completion",
    "GenerationJob",
    "LLMPort",
    "MiniMaxClient",
    "ProviderError",
    "VariantContent",
    "build_messages",
    "cost_micro_usd",
    "llm_from_settings",
    "parse_completion",
]
