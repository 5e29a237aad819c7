"""``make dev`` with ``DEV_FALLBACK``: the fake MiniMax and FakeOpenAI behind it, wired
through the development settings into the container's real fallback (real Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from devtools.compose import dev_container
from devtools.dev_providers import FALLBACK_MODEL, apply_defaults, start_dev_providers
from scripts.dev_server import welcome
from shared.ai.types import GenerationJob
from shared.bootstrap import Container
from shared.config import load_settings

JOB = GenerationJob(
    kind="create", brief="3 reasons to drink water", platform="tiktok", title=None,
    tone=None, duration_seconds=30, language="en", variants=2,
)  # fmt: skip


MakeContainer = Callable[[dict[str, str]], Container]


@pytest.fixture
def container_for(redis_url: str, run_prefix: str) -> Iterator[MakeContainer]:
    made: list[Container] = []

    def make(env: dict[str, str]) -> Container:
        settings = load_settings({"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": run_prefix, **env})
        container = dev_container(settings)
        made.append(container)
        return container

    yield make
    for container in made:
        container.close()


def test_off_by_default_starts_nothing() -> None:
    for mode in ("", "0"):
        providers = start_dev_providers(mode)
        assert providers.env == {}
        assert providers.fakes == []
        assert providers.note() is None


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="DEV_FALLBACK"):
        start_dev_providers("yes")


def test_the_environment_wins_over_the_defaults() -> None:
    environ = {"AI_API_KEY": "mine"}
    apply_defaults(environ, {"AI_API_KEY": "dev", "AI_PROVIDER": "minimax"})
    assert environ == {"AI_API_KEY": "mine", "AI_PROVIDER": "minimax"}


def test_with_minimax_up_minimax_answers(container_for: MakeContainer) -> None:
    providers = start_dev_providers("1")
    try:
        llm = container_for(providers.env).llm
        assert "FallbackLLM" in repr(llm)
        done = llm.generate(JOB, deadline=time.monotonic() + 30)
        assert (done.provider, len(done.variants)) == ("minimax", 2)
        minimax, fallback = providers.fakes
        assert (minimax.calls, fallback.calls) == (1, 0)
    finally:
        providers.stop()


def test_with_minimax_down_the_second_provider_answers(container_for: MakeContainer) -> None:
    providers = start_dev_providers("down")
    try:
        llm = container_for(providers.env).llm
        done = llm.generate(JOB, deadline=time.monotonic() + 120)
        assert (done.provider, done.model) == ("openai-compatible", FALLBACK_MODEL)
        assert len(done.variants) == 2
        minimax, fallback = providers.fakes
        assert minimax.calls >= 1
        assert fallback.calls == 1
        note = providers.note()
        assert note is not None
        assert "down" in note
    finally:
        providers.stop()
    printed = welcome("http://127.0.0.1:8080", "dev", "standard", "T", (), providers=note)
    assert printed.rstrip("\n").endswith(note)
    assert note not in welcome("http://127.0.0.1:8080", "dev", "standard", "T", ())
