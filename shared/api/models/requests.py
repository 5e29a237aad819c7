"""Request, query-string and shared field models (pydantic v2): what the API accepts.

Request models forbid unknown fields and bound every string; their validation errors
become 422 ``VALIDATION_FAILED`` with ``details.fields``.

The JSON Schema of a request model is the OpenAPI document's, so it must say exactly
what validation enforces (a generated client then refuses what the server would):
free text carries its "no NUL" pattern, and the rules across fields that a field type
cannot carry (one of two shapes, "at least one field", "not null once given") are
added to the schema next to the validator that enforces them.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shared.api.auth import SUBJECT_PATTERN, is_valid_subject
from shared.billing.stripe_billing import Product
from shared.db.models import AssetStatus, Platform
from shared.plans import (
    BOOST_DAYS,
    GRANT_DAYS,
    GRANT_MAX_GENERATIONS,
    MAX_VARIANTS,
    PackName,
    PlanName,
)

__all__ = [
    "HASHTAG_PATTERN",
    "NOT_BLANK_PATTERN",
    "NO_NUL_PATTERN",
    "TAG_PATTERN",
    "AdminBoostRequest",
    "AdminGrantRequest",
    "AdminGrantReverseRequest",
    "AdminSubscriptionRequest",
    "AssetContent",
    "AssetContentPatch",
    "AssetPatchRequest",
    "AssetQuery",
    "AssetStatus",
    "CheckoutRequest",
    "CostsQuery",
    "CreateAssetRequest",
    "CreateRequest",
    "DraftPatchRequest",
    "DraftQuery",
    "Hashtag",
    "PackCheckoutRequest",
    "Platform",
    "RegenerateRequest",
    "Text",
    "Title",
    "UUIDStr",
    "UserId",
    "VariantField",
]

HASHTAG_PATTERN = r"^#?[A-Za-z0-9_]{1,100}$"
TAG_PATTERN = r"^[a-z0-9_-]{1,40}$"
NO_NUL_PATTERN: Final = r"^[^\x00]*$"
# Not blank: some character that ``str.strip()`` keeps (Python's whitespace is Unicode
# White_Space plus the \x1c-\x1f separators, which JSON Schema's \s does not cover).
NOT_BLANK_PATTERN: Final = r"^[^\x00]*[^\s\x00\x1c-\x1f][^\x00]*$"


class VariantField(StrEnum):
    HOOK = "hook"
    SCRIPT = "script"
    CAPTION = "caption"
    HASHTAGS = "hashtags"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, StringConstraints(pattern=NO_NUL_PATTERN)]
# A title someone can read: not empty, not only spaces.
Title = Annotated[str, StringConstraints(pattern=NOT_BLANK_PATTERN)]
Hashtag = Annotated[str, StringConstraints(pattern=HASHTAG_PATTERN)]
UUIDStr = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]


# In a one-of branch: the property is given and not null (its type comes from the model).
_PRESENT: Final[dict[str, Any]] = {"not": {"type": "null"}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _integers_and_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = cls._integral_floats(data)
            for key, value in data.items():
                if isinstance(value, str):
                    _no_nul(value)
                elif isinstance(value, list):
                    for item in value:
                        if isinstance(item, str):
                            _no_nul(item)
                if isinstance(key, str):
                    _no_nul(key)
        return data

    @classmethod
    def _integral_floats(cls, data: dict[Any, Any]) -> dict[Any, Any]:
        # JSON has one number type and JSON Schema's "integer" includes 2.0, so the
        # document allows it: an integer field takes a float with no fraction. Strict
        # mode still refuses true and "2".
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is None or type(value) is not float or not value.is_integer():
                continue
            if field.annotation is int or int in get_args(field.annotation):
                out[name] = int(value)
        return out


class CreateRequest(_Strict):
    brief: str = Field(min_length=1, max_length=2000, pattern=NOT_BLANK_PATTERN)
    platform: Platform
    variants: int = Field(1, ge=1, le=MAX_VARIANTS)
    title: Text | None = Field(None, max_length=200)
    tone: Text | None = Field(None, max_length=64)
    duration_seconds: int = Field(30, ge=5, le=180)
    language: Text = Field("en", min_length=1, max_length=16)

    @field_validator("brief")
    @classmethod
    def _brief_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class RegenerateRequest(_Strict):
    draft_id: UUIDStr
    mode: Literal["targeted", "full"]
    variant_id: UUIDStr | None = None
    fields: list[VariantField] | None = Field(
        None, min_length=1, max_length=4, json_schema_extra={"uniqueItems": True}
    )
    instructions: Text | None = Field(None, max_length=1000)
    variants: int | None = Field(None, ge=1, le=MAX_VARIANTS)

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "title": "targeted",
                    "properties": {
                        "mode": {"const": "targeted"},
                        "variant_id": _PRESENT,
                        "variants": {"type": "null"},
                    },
                    "required": ["mode", "variant_id"],
                },
                {
                    "title": "full",
                    "properties": {
                        "mode": {"const": "full"},
                        "variant_id": {"type": "null"},
                        "fields": {"type": "null"},
                    },
                    "required": ["mode"],
                },
            ]
        }
    )

    @model_validator(mode="after")
    def _mode_rules(self) -> RegenerateRequest:
        if self.mode == "targeted":
            if self.variant_id is None:
                raise ValueError("variant_id is required for a targeted regeneration")
            if self.variants is not None:
                raise ValueError("variants applies only to a full regeneration")
        elif self.variant_id is not None or self.fields is not None:
            raise ValueError("variant_id and fields apply only to a targeted regeneration")
        if self.fields is not None and len(set(self.fields)) != len(self.fields):
            raise ValueError("fields must not repeat")
        return self


def _patch_schema(not_null: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    """The document's side of a PATCH model's rules: at least one field, and ``null``
    refused (absent or a value) for ``not_null`` — as ``_no_nulls`` enforces."""

    def patch(schema: dict[str, Any]) -> None:
        schema["minProperties"] = 1
        for name in not_null:
            prop = schema["properties"][name]
            [value] = [b for b in prop.pop("anyOf") if b.get("type") != "null"]
            prop.pop("default", None)
            prop.update(value)

    return patch


class _Patch(_Strict):
    """A PATCH body: at least one field, and ``null`` refused for ``NOT_NULL`` fields.

    Subclasses set ``model_config = ConfigDict(json_schema_extra=_patch_schema(...))``
    with the same tuple, so the document states what this validator enforces.
    """

    NOT_NULL: ClassVar[tuple[str, ...]] = ()
    EMPTY_MESSAGE: ClassVar[str] = "at least one field is required"

    @model_validator(mode="after")
    def _not_empty_nor_null(self) -> Self:
        if not self.model_fields_set:
            raise ValueError(self.EMPTY_MESSAGE)
        for name in self.NOT_NULL:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


_DRAFT_NOT_NULL: Final = ("brief", "platform", "duration_seconds", "language")


class DraftPatchRequest(_Patch):
    NOT_NULL: ClassVar[tuple[str, ...]] = _DRAFT_NOT_NULL

    title: Text | None = Field(None, max_length=200)
    brief: Text | None = Field(None, min_length=1, max_length=2000)
    tone: Text | None = Field(None, max_length=64)
    platform: Platform | None = None
    duration_seconds: int | None = Field(None, ge=5, le=180)
    language: Text | None = Field(None, min_length=1, max_length=16)
    selected_variant_id: UUIDStr | None = None

    model_config = ConfigDict(json_schema_extra=_patch_schema(_DRAFT_NOT_NULL))


class AssetContent(_Strict):
    hook: Text = Field(max_length=300)
    script: Text = Field(max_length=5000)
    caption: Text = Field(max_length=2200)
    hashtags: list[Hashtag] = Field(default_factory=list, max_length=30)


def _normalise_tags(value: Any) -> Any:
    """Tags are lower-cased on input (SPEC §4), so ``Water`` and ``water`` are one tag:
    each is kept once, in the order first given."""
    if isinstance(value, list):
        lowered = [t.lower() if isinstance(t, str) else t for t in value]
        if all(isinstance(t, str) for t in lowered):
            return list(dict.fromkeys(lowered))
        return lowered
    return value


class CreateAssetRequest(_Strict):
    draft_id: UUIDStr | None = None
    variant_id: UUIDStr | None = None
    raw: AssetContent | None = None
    platform: Platform | None = None
    title: Title | None = Field(None, min_length=1, max_length=200)
    tags: list[Annotated[str, StringConstraints(pattern=TAG_PATTERN)]] = Field(
        default_factory=list, max_length=20
    )
    status: AssetStatus = AssetStatus.READY

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {
                    "title": "a saved variant",
                    "properties": {
                        "draft_id": _PRESENT,
                        "variant_id": _PRESENT,
                        "raw": {"type": "null"},
                        "platform": {"type": "null"},
                    },
                    "required": ["draft_id", "variant_id"],
                },
                {
                    "title": "raw content",
                    "properties": {
                        "raw": _PRESENT,
                        "platform": _PRESENT,
                        "title": _PRESENT,
                        "draft_id": {"type": "null"},
                        "variant_id": {"type": "null"},
                    },
                    "required": ["raw", "platform", "title"],
                },
            ]
        }
    )

    _lower_tags = field_validator("tags", mode="before")(_normalise_tags)

    @model_validator(mode="after")
    def _one_source(self) -> CreateAssetRequest:
        from_variant = self.draft_id is not None or self.variant_id is not None
        if from_variant and self.raw is not None:
            raise ValueError("give either draft_id + variant_id or raw, not both")
        if from_variant:
            if self.draft_id is None or self.variant_id is None:
                raise ValueError("draft_id and variant_id go together")
            if self.platform is not None:
                raise ValueError("platform comes from the draft when saving a variant")
            return self
        if self.raw is None:
            raise ValueError("either draft_id + variant_id or raw is required")
        if self.platform is None or self.title is None:
            raise ValueError("raw assets need platform and title")
        return self


_CONTENT_NOT_NULL: Final = ("hook", "script", "caption", "hashtags")
_ASSET_NOT_NULL: Final = ("title", "tags", "status", "content")


class AssetContentPatch(_Patch):
    """Any of the content fields, each validated as when saving (SPEC §4)."""

    NOT_NULL: ClassVar[tuple[str, ...]] = _CONTENT_NOT_NULL
    EMPTY_MESSAGE: ClassVar[str] = "at least one content field is required"

    hook: Text | None = Field(None, max_length=300)
    script: Text | None = Field(None, max_length=5000)
    caption: Text | None = Field(None, max_length=2200)
    hashtags: list[Hashtag] | None = Field(None, max_length=30)

    model_config = ConfigDict(json_schema_extra=_patch_schema(_CONTENT_NOT_NULL))


class AssetPatchRequest(_Patch):
    """PATCH /v1/library/assets/{id} (SPEC §9)."""

    NOT_NULL: ClassVar[tuple[str, ...]] = _ASSET_NOT_NULL

    title: Title | None = Field(None, min_length=1, max_length=200)
    tags: list[Annotated[str, StringConstraints(pattern=TAG_PATTERN)]] | None = Field(
        None, max_length=20
    )
    status: AssetStatus | None = None
    content: AssetContentPatch | None = None

    model_config = ConfigDict(json_schema_extra=_patch_schema(_ASSET_NOT_NULL))

    _lower_tags = field_validator("tags", mode="before")(_normalise_tags)


def _subject(value: str) -> str:
    if not is_valid_subject(value):  # the pattern, plus printable (no format characters)
        raise ValueError("must be a user id a token can carry (1-128 printable characters)")
    return value


# The rule a token's ``sub`` follows: an id no token can carry could never be served.
UserId = Annotated[str, StringConstraints(pattern=SUBJECT_PATTERN), AfterValidator(_subject)]


class AdminSubscriptionRequest(_Strict):
    user_id: UserId
    plan: PlanName | None


class AdminBoostRequest(_Strict):
    user_id: UserId
    days: int = Field(BOOST_DAYS, ge=1, le=366)


class CheckoutRequest(_Strict):
    product: Product


class PackCheckoutRequest(_Strict):
    pack: PackName


class AdminGrantRequest(_Strict):
    """A support grant: one-off generations outside the monthly pool, with the reason."""

    user_id: UserId
    generations: int = Field(ge=1, le=GRANT_MAX_GENERATIONS)
    reason: Text = Field(min_length=1, max_length=500, pattern=NOT_BLANK_PATTERN)
    days: int = Field(GRANT_DAYS, ge=1, le=3660)


class AdminGrantReverseRequest(_Strict):
    reason: Text | None = Field(None, max_length=500)


# ---- query strings (here, not in the handlers, so the route table and OpenAPI see them) --


class AssetQuery(BaseModel):
    """Query string of GET /v1/library/assets."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform | None = None
    status: AssetStatus | None = None
    tags: Text | None = Field(None, max_length=20 * 41)
    q: Text | None = Field(None, max_length=200)
    limit: int = Field(20, ge=1, le=100)
    cursor: Text | None = Field(None, max_length=1024)
    deleted: bool = Field(False, description="List deleted assets still restorable instead.")

    def tag_list(self) -> tuple[str, ...]:
        if not self.tags:
            return ()
        return tuple(t.strip().lower() for t in self.tags.split(",") if t.strip())


class DraftQuery(BaseModel):
    """Query string of GET /v1/drafts."""

    model_config = ConfigDict(extra="forbid")

    platform: Platform | None = None
    q: Text | None = Field(None, max_length=200)
    limit: int = Field(20, ge=1, le=100)
    cursor: Text | None = Field(None, max_length=1024)


class CostsQuery(BaseModel):
    """Query string of GET /v1/admin/costs: ``from``/``to`` (inclusive UTC days; default
    this month to date) or ``month`` (SPEC §4); ``group_by`` any comma-separated subset
    of day,user,plan,model,source (default plan; empty: totals only; source: who paid,
    pool, pack or grant)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(None, alias="from", pattern=r"^\d{4}-\d{2}-\d{2}$")
    to: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    month: str | None = Field(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    group_by: str | None = Field(None, max_length=64, pattern=r"^[a-z, ]*$")
