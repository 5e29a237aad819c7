"""What a handler sees and returns: ``ApiRequest`` in, ``ApiResponse`` out, no Flask.

The wrapper (``shared.api.http``) builds the request and sends the response; the route
table (``shared.api.routes``) types its handlers with them; both import this module,
which imports neither. Nor does it import pydantic until a body is validated or a model
dumped: a refused request never pays for it (issue 17: cold start).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import BadRequest, InternalError, ValidationFailed

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from shared.api.auth import Principal

__all__ = ["ApiRequest", "ApiResponse", "dump_json", "validation_error"]

M = TypeVar("M", bound="BaseModel")


def dump_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON: the one serialisation every response (and replay) uses."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def validation_error(exc: ValidationError) -> ValidationFailed:
    """A pydantic error as 422 ``VALIDATION_FAILED`` with ``details.fields``."""
    fields = [
        {"loc": [p for p in err["loc"] if p != "__root__"], "msg": str(err["msg"])}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return ValidationFailed(details={"fields": fields})


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """What a handler sees: no framework types."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    request_id: str
    path_params: Mapping[str, str]
    principal: Principal | None
    url: str

    @property
    def user_id(self) -> str:
        if self.principal is None:
            raise InternalError("route has no authenticated principal")
        return self.principal.user_id

    def json(self) -> Any:
        """The body parsed as JSON; 400 ``INVALID_JSON`` when it is not."""
        try:
            return json.loads(self.body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadRequest("Request body is not valid JSON.", code="INVALID_JSON") from exc

    def parse(self, model: type[M]) -> M:
        """The body validated by ``model``; 422 ``VALIDATION_FAILED`` on field errors.

        Strict, from the JSON text: ``true`` or ``"2"`` for an integer is a wrong type
        (SPEC §3), not something to coerce. Enum values still match their JSON strings.
        """
        data = self.json()
        if not isinstance(data, dict):
            raise ValidationFailed.field([], "request body must be a JSON object")
        from pydantic import ValidationError

        try:
            return model.model_validate_json(self.body, strict=True)
        except ValidationError as exc:
            raise validation_error(exc) from exc

    def parse_query(self, model: type[M]) -> M:
        # Lax on purpose: a query string is all strings, so "limit=20" must become 20.
        from pydantic import ValidationError

        try:
            return model.model_validate(dict(self.query))
        except ValidationError as exc:
            raise validation_error(exc) from exc


@dataclass(slots=True)
class ApiResponse:
    """A response; ``stream`` (when set) replaces ``body`` and is sent as it is produced.

    A streamed response has committed to its status: an error while streaming can only
    cut the body short (logged; the client sees truncated JSON), so a streaming handler
    must do whatever can fail with a proper status before returning.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> ApiResponse:
        # A model's class loaded pydantic already; a plain payload has no need of it.
        if "pydantic" in sys.modules:
            from pydantic import BaseModel

            if isinstance(payload, BaseModel):
                payload = payload.model_dump(mode="json")
        return cls(
            status, dump_json(payload), {"Content-Type": "application/json", **(headers or {})}
        )
