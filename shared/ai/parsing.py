"""Tolerant parsing and strict validation of the model's answer (SPEC §5 output contract).

Tolerated around the JSON: ``<think>…</think>`` reasoning (also a lone ``</think>`` whose
opener was in the chat template, or an unterminated ``<think>``), Markdown fences and
prose. The answer is the LAST top-level JSON object that has a ``"variants"`` key (a
reasoning model may sketch a draft before its final answer). Validation is strict: any
problem raises ``ProviderError(PROVIDER_BAD_OUTPUT)`` whose message names the problem but
never quotes the text.

Hashtags are normalised to ``#tag``: surrounding whitespace and one leading ``#`` are
removed, the rest must match ``[A-Za-z0-9_]{1,100}``, then ``#`` is put back; a tag repeated
(case-insensitively) is kept once. A single string of tags separated by spaces or commas is
accepted as the list. Text fields are stripped and NUL characters removed (Postgres text
cannot hold them) before the limits are checked.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from shared.ai.errors import PROVIDER_BAD_OUTPUT, ProviderError
from shared.ai.types import (
    FIELD_MAX_CHARS,
    HASHTAG_MAX_CHARS,
    MAX_HASHTAGS,
    GenerationJob,
    VariantContent,
)

__all__ = ["normalise_hashtags", "parse_completion", "strip_reasoning"]

# Bounds the work spent on one answer: max_completion_tokens is at most 65536 (config), and
# a token is rarely more than 4 characters; each '{' tried is one C-speed JSON decode.
_MAX_TEXT_CHARS: Final = 300_000
_MAX_DECODE_TRIES: Final = 200

_THINK_BLOCK: Final = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN: Final = "<think>"
_THINK_CLOSE: Final = "</think>"
_TAG_BODY: Final = re.compile(rf"[A-Za-z0-9_]{{1,{HASHTAG_MAX_CHARS}}}")
_TAG_SPLIT: Final = re.compile(r"[\s,]+")
_DECODER: Final = json.JSONDecoder()


class _Invalid(ValueError):
    """One validation problem; ``args[0]`` names it without quoting the text."""


def _bad(reason: str) -> ProviderError:
    return ProviderError(PROVIDER_BAD_OUTPUT, f"Unusable model output: {reason}.")


def strip_reasoning(text: str) -> str:
    """Remove ``<think>`` reasoning, closed or not, from a model answer."""
    text = _THINK_BLOCK.sub("", text)
    lowered = text.lower()
    if (close := lowered.rfind(_THINK_CLOSE)) >= 0:
        text = text[close + len(_THINK_CLOSE) :]
        lowered = text.lower()
    if (opener := lowered.find(_THINK_OPEN)) >= 0:
        # Unterminated: keep what came before it, or (a leading one) search after the tag.
        before = text[:opener]
        text = before if before.strip() else text[opener + len(_THINK_OPEN) :]
    return text


def _find_answer(text: str) -> dict[str, Any]:
    """The last top-level JSON object with a "variants" key."""
    found: dict[str, Any] | None = None
    pos, tries = 0, 0
    while tries < _MAX_DECODE_TRIES and (start := text.find("{", pos)) >= 0:
        tries += 1
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            pos = start + 1
            continue
        if isinstance(value, dict) and "variants" in value:
            found = value
        pos = end
    if found is None:
        raise _Invalid('no JSON object with "variants" found')
    return found


def _text_field(item: dict[str, Any], field: str) -> str:
    value = item.get(field)
    if not isinstance(value, str):
        raise _Invalid(f"{field} missing or not a string")
    value = value.replace("\x00", "").strip()
    if not value:
        raise _Invalid(f"{field} is empty")
    if len(value) > FIELD_MAX_CHARS[field]:
        raise _Invalid(f"{field} longer than {FIELD_MAX_CHARS[field]} characters")
    return value


def normalise_hashtags(value: object) -> tuple[str, ...]:
    """Validated hashtags in ``#tag`` form, duplicates dropped; raises ``PROVIDER_BAD_OUTPUT``."""
    try:
        return _hashtags(value)
    except _Invalid as exc:
        raise _bad(str(exc)) from None


def _hashtags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = list(_TAG_SPLIT.split(value))
    elif isinstance(value, list):
        items = value
    else:
        raise _Invalid("hashtags missing or not a list")
    tags: list[str] = []
    seen: set[str] = set()
    for raw in items:
        if not isinstance(raw, str):
            raise _Invalid("a hashtag is not a string")
        if not raw.strip():
            continue  # an empty piece from splitting "#a, #b"
        body = raw.strip().removeprefix("#")
        if not _TAG_BODY.fullmatch(body):
            raise _Invalid(f"a hashtag is not 1-{HASHTAG_MAX_CHARS} of A-Z a-z 0-9 _")
        if body.lower() not in seen:
            seen.add(body.lower())
            tags.append(f"#{body}")
    if len(tags) > MAX_HASHTAGS:
        raise _Invalid(f"more than {MAX_HASHTAGS} hashtags")
    return tuple(tags)


def _variant(
    item: object, fields: tuple[str, ...], source: VariantContent | None
) -> VariantContent:
    if not isinstance(item, dict):
        raise _Invalid("a variant is not an object")
    texts = {f: _text_field(item, f) for f in fields if f != "hashtags"}
    hashtags = _hashtags(item.get("hashtags")) if "hashtags" in fields else None
    if source is not None:
        # Targeted: only the chosen fields come from the model; the rest stay the source's.
        return VariantContent(
            hook=texts.get("hook", source.hook),
            script=texts.get("script", source.script),
            caption=texts.get("caption", source.caption),
            hashtags=source.hashtags if hashtags is None else hashtags,
        )
    return VariantContent(
        hook=texts["hook"],
        script=texts["script"],
        caption=texts["caption"],
        hashtags=hashtags or (),
    )


def parse_completion(text: str, job: GenerationJob) -> tuple[VariantContent, ...]:
    """Exactly ``job.expected_variants`` validated variants from a raw answer, or ``BAD_OUTPUT``.

    Extra variants are dropped; invalid ones are skipped, and too few usable ones fail.
    For a targeted job the one variant is the source with only the chosen fields replaced.
    """
    try:
        return _parse(text, job)
    except _Invalid as exc:
        raise _bad(str(exc)) from None


def _parse(text: str, job: GenerationJob) -> tuple[VariantContent, ...]:
    if len(text) > _MAX_TEXT_CHARS:
        raise _Invalid("answer too long")
    items = _find_answer(strip_reasoning(text))["variants"]
    if not isinstance(items, list):
        raise _Invalid('"variants" is not a list')
    wanted = job.expected_variants
    source = job.source if job.kind == "regen_targeted" else None
    variants: list[VariantContent] = []
    first_problem = ""
    for index, item in enumerate(items, start=1):
        try:
            variants.append(_variant(item, job.rewritten_fields, source))
        except _Invalid as exc:
            first_problem = first_problem or f"; variant {index}: {exc}"
        if len(variants) == wanted:
            return tuple(variants)
    raise _Invalid(f"expected {wanted} usable variants, got {len(variants)}{first_problem}")
