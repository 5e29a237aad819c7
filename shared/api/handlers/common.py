"""Small helpers every handler shares: headers, ids, replays."""

from __future__ import annotations

import re
import uuid
from typing import Final

from shared.api.http import ApiRequest, ApiResponse
from shared.enforcement import StoredResponse
from shared.errors import NotFound, PreconditionFailed, ValidationFailed

__all__ = ["expected_version", "idempotency_key", "path_uuid", "stored"]

_IDEM_RE: Final = re.compile(r"^[\x21-\x7e]{1,255}$")  # 1–255 visible ASCII (SPEC §3)


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


def expected_version(req: ApiRequest, what: str) -> int | None:
    """The version an ``If-Match`` demands; None when absent or ``*``; 412 if unparseable
    (a weak or foreign tag can never match our strong ``"<version>"`` ETags)."""
    value = req.headers.get("If-Match")
    if value is None or value.strip() == "*":
        return None
    m = re.fullmatch(r'\s*"(\d{1,9})"\s*', value)
    if m is None:
        raise PreconditionFailed(f"If-Match does not match the {what}'s ETag.")
    return int(m.group(1))
