"""``make dev`` with two providers: ``DEV_FALLBACK`` starts the fake MiniMax and, beside
it, ``FakeOpenAI`` as the second provider, so provider fallback can be tried by hand.

- unset or ``0`` (the default): nothing; ``make dev`` keeps the offline writer;
- ``1``: MiniMax (fake) answers what each prompt asks for; the fallback is there but
  only used if MiniMax fails;
- ``down``: the fake MiniMax answers every call HTTP 503, so each job goes to the second
  provider (``provider_fallback`` in the log; after ``CIRCUIT_FAILURES`` failures the
  circuit opens and MiniMax is no longer called until ``CIRCUIT_COOLDOWN_S`` has passed).

The settings it returns are only defaults: a variable already set in the environment wins.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Final

from devtools.fake_minimax import (
    FakeMiniMax,
    FakeOpenAI,
    RecordedRequest,
    Scripted,
    answer_prompt,
    http_error,
)

__all__ = ["MODES", "DevProviders", "apply_defaults", "start_dev_providers"]

MODES: Final = ("", "0", "1", "down")
FALLBACK_MODEL: Final = "fake-fallback-1"


def _unavailable(_request: RecordedRequest) -> Scripted:
    return http_error(503)


@dataclass
class DevProviders:
    """The fakes started (stop them with ``stop``) and the settings that point at them."""

    env: dict[str, str] = field(default_factory=dict)
    fakes: list[FakeMiniMax] = field(default_factory=list)
    mode: str = ""

    def note(self) -> str | None:
        """The line ``make dev`` prints about them, or None when off."""
        if not self.fakes:
            return None
        primary = "down (HTTP 503)" if self.mode == "down" else "up"
        return (
            f"Providers: fake MiniMax {primary} at {self.env['AI_BASE_URL']}, falling back"
            f" to FakeOpenAI at {self.env['FALLBACK_AI_BASE_URL']} (DEV_FALLBACK={self.mode})"
        )

    def stop(self) -> None:
        for fake in reversed(self.fakes):
            fake.stop()
        self.fakes.clear()


def start_dev_providers(mode: str) -> DevProviders:
    """Start the fakes for ``DEV_FALLBACK=mode`` (``MODES``); ValueError on another value."""
    if mode not in MODES:
        raise ValueError(f"DEV_FALLBACK: one of 0, 1, down (got {mode!r})")
    if mode in ("", "0"):
        return DevProviders()
    responder = _unavailable if mode == "down" else answer_prompt
    minimax = FakeMiniMax(responder=responder)
    fallback = FakeOpenAI(responder=answer_prompt)
    providers = DevProviders(mode=mode)
    for fake in (minimax, fallback):
        fake.start()
        providers.fakes.append(fake)
    providers.env = {
        "AI_PROVIDER": "minimax",
        "AI_BASE_URL": minimax.url,
        "AI_API_KEY": "dev-fake-minimax",
        "FALLBACK_AI_BASE_URL": fallback.base_url,
        "FALLBACK_AI_MODEL": FALLBACK_MODEL,
        "FALLBACK_AI_API_KEY": "dev-fake-fallback",
    }
    return providers


def apply_defaults(environ: MutableMapping[str, str], env: Mapping[str, str]) -> None:
    """Set each of ``env`` in ``environ`` unless it is already set there."""
    for name, value in env.items():
        environ.setdefault(name, value)
