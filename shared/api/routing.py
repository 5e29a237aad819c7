"""What a route is: method, path, its handler function, its Cloud Function, auth, models.

The table itself is ``shared.api.routes``; this module holds only the types, so the
wrapper (``shared.api.http``) and the OpenAPI builder can name them without importing
the table (which imports every handler module).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shared.api.messages import ApiRequest, ApiResponse

if TYPE_CHECKING:
    from shared.bootstrap import Container

__all__ = ["Auth", "Handler", "Route"]

Auth = Literal["bearer", "admin", "none", "qstash", "stripe"]
Handler = Callable[[ApiRequest, "Container"], ApiResponse]


@dataclass(frozen=True, slots=True)
class Route:
    """One method + path of the public contract, and the function that answers it."""

    method: str
    pattern: str
    handler: Handler
    function: str  # the Cloud Function (shared.registry name) serving it
    auth: Auth = "bearer"
    summary: str = ""
    # Names of classes in shared.api.models: a handler imports its models itself, after
    # authentication (a request refused before its handler never builds them); the
    # OpenAPI builder looks them up by these names.
    request_model: str | None = None
    response_model: str | None = None
    query_model: str | None = None
    status: int = 200
    idempotent: bool = False
    # The bearer token may come as ``?access_token=`` when no Authorization header does: a
    # browser's EventSource cannot send headers. Only paths are logged, never queries.
    query_token: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$")

    @property
    def operation(self) -> str:
        """The OpenAPI ``operationId``: the handler's name."""
        return self.handler.__name__
