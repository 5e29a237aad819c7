"""Builds the configured ``LLMPort`` from settings (called by the composition root)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from shared.ai.minimax import MiniMaxClient
from shared.ai.openai_compat import OpenAICompatClient
from shared.ai.pricing import register_price
from shared.ai.types import OFFLINE_MODEL, OFFLINE_PROVIDER, LLMPort
from shared.config import ConfigError

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["fallback_from_settings", "llm_from_settings", "llm_identity"]

# MiniMax answers non-streamed completions only when it has finished writing, and an
# M2.x model reasoning up to AI_MAX_TOKENS can take well over a minute; the job deadline
# (MAX_JOB_RUNTIME_S) still bounds every attempt.
_READ_TIMEOUT_S: Final = 120.0


def llm_identity(settings: Settings) -> tuple[str, str]:
    """(provider, model) that ``llm_from_settings`` would build, without needing its key:
    create and regenerate record them on the generation but never call the provider, so
    they run without ``MINIMAX_API_KEY`` (only the worker holds it)."""
    if settings.effective_ai_provider == "offline" and settings.is_development:
        return OFFLINE_PROVIDER, OFFLINE_MODEL
    return MiniMaxClient.provider, settings.minimax_model


def llm_from_settings(settings: Settings) -> LLMPort:
    """``MiniMaxClient`` for provider "minimax". Development's "offline" writer
    (``devtools.offline_writer.OfflineWriter``; production refuses it) is built by
    ``devtools.compose``, which passes it to the container. No I/O."""
    if settings.effective_ai_provider == "offline" and settings.is_development:
        raise ConfigError(
            "AI_PROVIDER: 'offline' is built by devtools.compose.dev_container (make dev)"
        )
    if not settings.minimax_api_key:
        raise ConfigError("MINIMAX_API_KEY: required when AI_PROVIDER=minimax")
    return MiniMaxClient(
        settings.minimax_api_key,
        base_url=settings.minimax_base_url,
        model=settings.minimax_model,
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
