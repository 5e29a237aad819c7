"""``OfflineWriter``: a deterministic, network-free ``LLMPort`` for ``make demo`` and development.

Same job → same output (content is picked by a SHA-256 of the job). Every hook and caption
starts with ``[offline demo]`` so nobody mistakes it for model output. Token counts are
estimated at four characters per token; the price table charges ``offline-v1`` nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from typing import Final

from shared.ai.errors import PROVIDER_TIMEOUT, ProviderError
from shared.ai.prompts import build_messages
from shared.ai.types import (
    FIELD_MAX_CHARS,
    MAX_HASHTAGS,
    OFFLINE_MODEL,
    OFFLINE_PROVIDER,
    Completion,
    GenerationJob,
    VariantContent,
)

__all__ = ["LABEL", "OfflineWriter"]

LABEL: Final = "[offline demo]"
_CHARS_PER_TOKEN: Final = 4
_BRIEF_WORDS_AS_TAGS: Final = 5

_ANGLES: Final = ("Quick take", "Myth vs fact", "Story time", "Three tips", "Hot take", "POV")
_OPENERS: Final = (
    "Stop scrolling for a second.",
    "Here is the part nobody tells you.",
    "You have probably heard this before, but listen.",
    "This changed how I think about it.",
)
_CLOSERS: Final = (
    "Save this for later and share it with a friend who needs it.",
    "Follow for more and tell me in the comments what you think.",
    "Try it today and come back to tell me how it went.",
)
_TAG_WORD: Final = re.compile(r"[A-Za-z0-9_]{3,30}")


def _clip(text: str, limit: int) -> str:
    """Whitespace collapsed, NULs removed (Postgres text refuses them), at most ``limit``."""
    text = " ".join(text.replace("\x00", "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _tokens(chars: int) -> int:
    return math.ceil(chars / _CHARS_PER_TOKEN)


class OfflineWriter:
    """Deterministic local writer (provider ``offline``, model ``offline-v1``); no network."""

    provider = OFFLINE_PROVIDER
    model = OFFLINE_MODEL

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._latency_s = max(0.0, latency_s)
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"OfflineWriter(latency_s={self._latency_s})"

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        """Labelled demo variants for ``job``; ``PROVIDER_TIMEOUT`` if latency passes deadline."""
        if self._latency_s:
            remaining = deadline - self._clock()
            if self._latency_s > remaining:
                self._sleep(max(0.0, remaining))
                raise ProviderError(PROVIDER_TIMEOUT, "The offline writer passed the deadline.")
            self._sleep(self._latency_s)
        seed = hashlib.sha256(
            json.dumps(dataclasses.asdict(job), sort_keys=True, default=list).encode()
        ).digest()
        if job.kind == "regen_targeted" and job.source is not None:
            fresh = self._variant(job, 0, seed)
            chosen = {f: getattr(fresh, f) for f in job.fields}
            variants: tuple[VariantContent, ...] = (dataclasses.replace(job.source, **chosen),)
        else:
            variants = tuple(self._variant(job, i, seed) for i in range(job.variants))
        prompt_chars = sum(len(m["content"]) for m in build_messages(job))
        output_chars = sum(
            len(v.hook) + len(v.script) + len(v.caption) + len("".join(v.hashtags))
            for v in variants
        )
        return Completion(
            variants=variants,
            provider=self.provider,
            model=self.model,
            prompt_tokens=_tokens(prompt_chars),
            completion_tokens=_tokens(output_chars),
            attempts=1,
            trace_id=None,
        )

    def _variant(self, job: GenerationJob, index: int, seed: bytes) -> VariantContent:
        pick = seed[index % len(seed)] + index
        angle = _ANGLES[pick % len(_ANGLES)]
        topic = _clip(job.title or job.brief, 120)
        tone_text = _clip(job.tone or "", 64)
        tone = f" Tone: {tone_text}." if tone_text else ""
        rewrite = " (rewritten)" if job.kind != "create" else ""
        hook = _clip(f"{LABEL} {angle} #{index + 1}{rewrite}: {topic}", FIELD_MAX_CHARS["hook"])
        script = _clip(
            f"{_OPENERS[pick % len(_OPENERS)]} The idea: {_clip(job.brief, 1500).rstrip('.')}. "
            f"This {job.duration_seconds}-second {job.platform} script ({angle.lower()}, "
            f"language {_clip(job.language, 16)}) was written by the offline demo writer, "
            f"not a language model.{tone} {_CLOSERS[pick % len(_CLOSERS)]}",
            FIELD_MAX_CHARS["script"],
        )
        caption = _clip(
            f"{LABEL} {angle}{rewrite}: {topic} — demo content written without an AI provider.",
            FIELD_MAX_CHARS["caption"],
        )
        return VariantContent(hook=hook, script=script, caption=caption, hashtags=_tags(job))


def _tags(job: GenerationJob) -> tuple[str, ...]:
    candidates = ["offlinedemo", job.platform, *_TAG_WORD.findall(job.brief)]
    tags: list[str] = []
    for word in candidates:
        tag = f"#{word.lower()}"
        if _TAG_WORD.fullmatch(word) and tag not in tags:
            tags.append(tag)
        if len(tags) >= min(MAX_HASHTAGS, 2 + _BRIEF_WORDS_AS_TAGS):
            break
    return tuple(tags)
