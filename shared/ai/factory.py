"""Builds the configured ``LLMPort`` from settings (called by the composition root).

``CLIENTS`` is the one table of providers ``AI_PROVIDER`` may choose: adding one is its
module under ``shared/ai/providers/``, a row here, its prices (``pricing.py``) and its
name in ``shared.config.AiProvider``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shared.ai.client import AIClient
from shared.ai.pricing import register_price
from shared.ai.providers.minimax import MiniMaxClient
from shared.ai.providers.openai_compat import OpenAICompatClient
from shared.ai.types import OFFLINE_MODEL, OFFLINE_PROVIDER, LLMPort
from shared.config import ConfigError

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["CLIENTS", "fallback_from_settings", "llm_from_settings", "llm_identity"]

# AI_PROVIDER value -> its client ("offline" is the development writer, no provider).
CLIENTS: Final[dict[str, type[AIClient]]] = {"minimax": MiniMaxClient}

# Providers answer non-streamed completions only when they have finished writing, and a
# reasoning model (MiniMax M2.x) writing up to AI_MAX_TOKENS can take well over a minute;
# the job deadline (MAX_JOB_RUNTIME_S) still bounds every attempt.
_READ_TIMEOUT_S: Final = 120.0


def _client(settings: Settings) -> type[AIClient]:
    return CLIENTS[settings.effective_ai_provider]


def llm_identity(settings: Settings) -> tuple[str, str]:
    """(provider, model) that ``llm_from_settings`` would build, without needing its key:
    create and regenerate record them on the generation but never call the provider, so
    they run without ``AI_API_KEY`` (only the worker holds it)."""
    if settings.effective_ai_provider == "offline" and settings.is_development:
        return OFFLINE_PROVIDER, OFFLINE_MODEL
    wire = _client(settings).wire
    return wire.name, settings.ai_model or wire.default_model


def llm_from_settings(settings: Settings) -> LLMPort:
    """The ``AI_PROVIDER``'s client (``CLIENTS``). Development's "offline" writer
    (``devtools.offline_writer.OfflineWriter``; production refuses it) is built by
    ``devtools.compose``, which passes it to the container. No I/O."""
    provider = settings.effective_ai_provider
    if provider == "offline" and settings.is_development:
        raise ConfigError(
            "AI_PROVIDER: 'offline' is built by devtools.compose.dev_container (make dev)"
        )
    if not settings.ai_api_key:
        raise ConfigError(f"AI_API_KEY: required when AI_PROVIDER={provider}")
    client = _client(settings)
    return client(
        settings.ai_api_key,
        base_url=settings.ai_base_url or client.wire.default_base_url,
        model=settings.ai_model or client.wire.default_model,
        max_tokens=settings.ai_max_tokens,
        read_timeout_s=_READ_TIMEOUT_S,
    )


def fallback_from_settings(settings: Settings) -> OpenAICompatClient | None:
    """The second provider (``FALLBACK_AI_*``), or None when it is not configured. No I/O."""
    key, url, model = (
        settings.fallback_ai_api_key,
        settings.fallback_ai_base_url,
        settings.fallback_ai_model,
    )
    if not (key and url and model):
        return None
    if settings.fallback_ai_price_in is not None and settings.fallback_ai_price_out is not None:
        register_price(model, settings.fallback_ai_price_in, settings.fallback_ai_price_out)
    return OpenAICompatClient(
        key,
        provider=settings.fallback_ai_provider,
        base_url=url,
        model=model,
        max_tokens=settings.ai_max_tokens,
        read_timeout_s=_READ_TIMEOUT_S,
    )
