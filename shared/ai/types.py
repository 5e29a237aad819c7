"""Values crossing the AI boundary: the job we ask for, the content we get back, the port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from shared.plans import MAX_VARIANTS

__all__ = [
    "FIELDS",
    "FIELD_MAX_CHARS",
    "HASHTAG_MAX_CHARS",
    "MAX_HASHTAGS",
    "MAX_VARIANTS",
    "OFFLINE_MODEL",
    "OFFLINE_PROVIDER",
    "Completion",
    "Field",
    "GenerationJob",
    "JobKind",
    "LLMPort",
    "VariantContent",
]

Field = Literal["hook", "script", "caption", "hashtags"]
JobKind = Literal["create", "regen_targeted", "regen_full"]

FIELDS: Final[tuple[str, ...]] = ("hook", "script", "caption", "hashtags")

# The development writer's identity (devtools.offline_writer.OfflineWriter), recorded on
# generations created without calling a provider and priced at nothing (pricing.py).
OFFLINE_PROVIDER: Final = "offline"
OFFLINE_MODEL: Final = "offline-v1"

# Variant field limits (SPEC §4): characters for text fields, items for hashtags.
FIELD_MAX_CHARS: Final[dict[str, int]] = {"hook": 300, "script": 5000, "caption": 2200}
MAX_HASHTAGS: Final = 30
HASHTAG_MAX_CHARS: Final = 100  # without the leading '#'


@dataclass(frozen=True, slots=True)
class VariantContent:
    """One variant's text. Hashtags are normalised to ``#tag`` form (see parsing)."""

    hook: str
    script: str
    caption: str
    hashtags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GenerationJob:
    """What to write. ``source`` is the variant a targeted regeneration rewrites."""

    kind: JobKind
    brief: str
    platform: str
    title: str | None
    tone: str | None
    duration_seconds: int
    language: str
    variants: int
    fields: tuple[str, ...] = FIELDS
    instructions: str | None = None
    source: VariantContent | None = None
    # The job's lane: a fallback provider takes its in-flight slot in this lane.
    lane: str = "interactive"

    def __post_init__(self) -> None:
        if self.kind not in ("create", "regen_targeted", "regen_full"):
            raise ValueError(f"unknown job kind {self.kind!r}")
        if not 1 <= self.variants <= MAX_VARIANTS:
            raise ValueError(f"variants must be 1..{MAX_VARIANTS}")
        if not self.fields or len(set(self.fields)) != len(self.fields):
            raise ValueError("fields must be a non-empty tuple without duplicates")
        if unknown := set(self.fields) - set(FIELDS):
            raise ValueError(f"unknown fields {sorted(unknown)}")
        if self.kind == "regen_targeted" and self.source is None:
            raise ValueError("a targeted regeneration needs the source variant")

    @property
    def expected_variants(self) -> int:
        """How many variants the model must return (one for a targeted rewrite)."""
        return 1 if self.kind == "regen_targeted" else self.variants

    @property
    def rewritten_fields(self) -> tuple[str, ...]:
        """Fields the model writes: the chosen ones when targeted, else all four."""
        if self.kind != "regen_targeted":
            return FIELDS
        return tuple(f for f in FIELDS if f in self.fields)


@dataclass(frozen=True, slots=True)
class Completion:
    """A successful generation plus what it cost (tokens summed over every attempt)."""

    variants: tuple[VariantContent, ...]
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    trace_id: str | None
    # What providers that gave up before this one spent (a fallback answered), already
    # priced at their own models: the ledger adds it to this answer's cost.
    prior_cost_micro_usd: int = 0


class LLMPort(Protocol):
    """Anything that turns a job into variants; ``deadline`` is a ``time.monotonic()`` value."""

    provider: str
    model: str

    def generate(self, job: GenerationJob, *, deadline: float) -> Completion:
        """Write the job's variants or raise ``ProviderError`` (never past ``deadline``)."""
        ...
