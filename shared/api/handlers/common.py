"""Small helpers every handler shares: headers, ids, replays."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Final

from shared.api.messages import ApiRequest, ApiResponse
from shared.errors import NotFound, PreconditionFailed, ValidationFailed

if TYPE_CHECKING:
    from shared.enforcement import StoredResponse

__all__ = ["expected_version", "idempotency_key", "path_uuid", "stored"]

_IDEM_RE: Final = re.compile(r"^[\x21-\x7e]{1,255}$")  # 1–255 visible ASCII (SPEC §3)
# One strong entity-tag of ours in an If-Match list: "<version>", not preceded by W/.
_STRONG_TAG_RE: Final = re.compile(r'(?<![Ww]/)"(\d{1,9})"')


def idempotency_key(req: ApiRequest) -> str | None:
    """The ``Idempotency-Key`` header, validated; None when absent."""
    value = req.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not _IDEM_RE.match(value):
        raise ValidationFailed.field(
            ["header", "Idempotency-Key"], "must be 1-255 visible ASCII characters"
        )
    return value


def path_uuid(req: ApiRequest, name: str = "id") -> uuid.UUID:
    """A UUID path parameter; anything else is simply not found."""
    try:
        return uuid.UUID(req.path_params[name])
    except (KeyError, ValueError) as exc:
        raise NotFound() from exc


def stored(response: StoredResponse, replayed: bool) -> ApiResponse:
    """A stored response, byte-for-byte, flagged when it is a replay."""
    headers = dict(response.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return ApiResponse(response.status, response.body.encode("utf-8"), headers)


def expected_version(req: ApiRequest, what: str) -> frozenset[int] | None:
    """The versions an ``If-Match`` accepts; None when absent or ``*``.

    RFC 9110 §13.1.1: the field is a list and matches when any of its entity-tags
    matches (strong comparison). Weak or foreign tags never match our strong
    ``"<version>"`` ETags; a field with none of ours is 412 at once."""
    value = req.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    versions = frozenset(int(v) for v in _STRONG_TAG_RE.findall(value))
    if not versions:
        raise PreconditionFailed(f"If-Match does not match the {what}'s ETag.")
    return versions
