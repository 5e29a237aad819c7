"""llm_from_settings picks the adapter; GenerationJob refuses impossible jobs."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.compose import dev_container
from devtools.compose import llm_from_settings as dev_llm_from_settings
from devtools.offline_writer import OfflineWriter
from shared.ai import GenerationJob, MiniMaxClient, VariantContent
from shared.ai.factory import llm_from_settings
from shared.config import ConfigError, load_settings


def test_offline_without_a_key_in_development() -> None:
    assert isinstance(dev_llm_from_settings(load_settings(env={})), OfflineWriter)


def test_minimax_when_a_key_is_set() -> None:
    settings = load_settings(
        env={"AI_API_KEY": "k", "AI_MODEL": "MiniMax-M2.7", "AI_MAX_TOKENS": "2048"}
    )
    llm = llm_from_settings(settings)
    assert isinstance(llm, MiniMaxClient)
    assert (llm.provider, llm.model) == ("minimax", "MiniMax-M2.7")
    assert "k" not in repr(llm).replace("api.minimax", "")


def test_explicit_offline_wins_over_a_key() -> None:
    settings = load_settings(env={"AI_API_KEY": "k", "AI_PROVIDER": "offline"})
    assert isinstance(dev_llm_from_settings(settings), OfflineWriter)


def test_minimax_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="AI_API_KEY"):
        llm_from_settings(load_settings(env={"AI_PROVIDER": "minimax"}))


def test_client_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="api_key"):
        MiniMaxClient(" ", base_url="https://api.minimax.io", model="m", max_tokens=1)
    with pytest.raises(ValueError, match="base_url"):
        MiniMaxClient("k", base_url="api.minimax.io", model="m", max_tokens=1)
    with pytest.raises(ValueError, match="max_attempts"):
        MiniMaxClient("k", base_url="https://x", model="m", max_tokens=1, max_attempts=0)


BASE: dict[str, Any] = {
    "kind": "create",
    "brief": "b",
    "platform": "tiktok",
    "title": None,
    "tone": None,
    "duration_seconds": 30,
    "language": "en",
    "variants": 1,
}


@pytest.mark.parametrize(
    "overrides",
    [
        {"variants": 0},
        {"variants": 6},
        {"fields": ()},
        {"fields": ("hook", "hook")},
        {"fields": ("title",)},
        {"kind": "regen_targeted"},
        {"kind": "other"},
    ],
)
def test_impossible_jobs_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GenerationJob(**{**BASE, **overrides})


def test_targeted_expects_one_variant_with_the_chosen_fields_in_canonical_order() -> None:
    source = VariantContent("h", "s", "c", ())
    target = GenerationJob(
        **{**BASE, "kind": "regen_targeted", "variants": 3, "fields": ("hashtags", "hook")},
        source=source,
    )
    assert target.expected_variants == 1
    assert target.rewritten_fields == ("hook", "hashtags")


_FALLBACK = {
    "FALLBACK_AI_BASE_URL": "https://gateway.example/v1",
    "FALLBACK_AI_MODEL": "some-model",
    "FALLBACK_AI_API_KEY": "fb-secret-key",
}


def test_no_fallback_unless_configured_and_the_container_keeps_plain_minimax() -> None:
    from shared.ai.factory import fallback_from_settings
    from shared.bootstrap import Container

    settings = load_settings(env={"AI_API_KEY": "k"})
    assert fallback_from_settings(settings) is None
    assert type(Container(settings).llm) is MiniMaxClient  # exactly as without the feature


def test_a_configured_fallback_wraps_minimax_in_the_container() -> None:
    from shared.ai.factory import fallback_from_settings
    from shared.ai.fallback import FallbackLLM
    from shared.ai.providers.openai_compat import OpenAICompatClient

    settings = load_settings(
        env={"AI_API_KEY": "k", "FALLBACK_AI_PROVIDER": "openrouter", **_FALLBACK}
    )
    second = fallback_from_settings(settings)
    assert isinstance(second, OpenAICompatClient)
    assert (second.provider, second.model) == ("openrouter", "some-model")
    assert "fb-secret-key" not in repr(second)
    llm = dev_container(settings).llm  # builds no connection: Redis is only used per call
    assert isinstance(llm, FallbackLLM)
    assert (llm.provider, llm.model) == ("minimax", "MiniMax-M2.5")  # what create records


def test_the_offline_writer_gets_no_fallback() -> None:

    settings = load_settings(env={"AI_PROVIDER": "offline", **_FALLBACK})
    assert isinstance(dev_container(settings).llm, OfflineWriter)


@pytest.mark.parametrize("missing", sorted(_FALLBACK))
def test_a_partial_fallback_configuration_is_refused(missing: str) -> None:
    env = {k: v for k, v in _FALLBACK.items() if k != missing}
    with pytest.raises(ConfigError, match="FALLBACK_AI_BASE_URL"):
        load_settings(env=env)
