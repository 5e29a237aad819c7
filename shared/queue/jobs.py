"""What travels through the queue: the job payload and QStash's failure-callback body."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadRequest, ValidationFailed

__all__ = [
    "WORKER_FAILED_PATH",
    "WORKER_GENERATE_PATH",
    "WORKER_ROLLUP_PATH",
    "WORKER_SWEEP_PATH",
    "FailureCallback",
    "JobPayload",
]

# Paths under WORKER_URL; QStash signs the full URL, so sender and verifier share these.
WORKER_GENERATE_PATH = "/worker/generate"
WORKER_FAILED_PATH = "/worker/failed"
WORKER_SWEEP_PATH = "/worker/sweep"
WORKER_ROLLUP_PATH = "/worker/rollup"

_M = TypeVar("_M", bound=BaseModel)
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class JobPayload(BaseModel):
    """One generation job (SPEC §5). Ids only: the worker reads everything else from Postgres."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Our own ids: a generation (and its lease) is a UUID, a user id has no NUL (Postgres
    # text refuses it). Anything else can never be processed: the route says so to QStash.
    generation_id: str = Field(pattern=_UUID)
    user_id: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00]+$")
    lease_id: str = Field(pattern=_UUID)
    # Same alphabet and bound as the API's X-Request-Id (SPEC §3).
    request_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")

    def to_body(self) -> bytes:
        """Canonical JSON bytes (sorted keys, no spaces): equal jobs give equal bodies."""
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_body(cls, body: bytes) -> JobPayload:
        """Parse a delivered body; ``BadRequest`` if it is not JSON, ``ValidationFailed`` else."""
        return _validate(cls, body)


class FailureCallback(BaseModel):
    """The JSON QStash posts to the failure callback once the last retry has failed.

    Only ``sourceBody`` is required: it is the one field the worker cannot do without
    (it names the job). Unknown fields are ignored because QStash adds fields over time.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    status: int = 0
    retried: int = 0
    max_retries: int = Field(0, alias="maxRetries")
    url: str = ""
    source_message_id: str | None = Field(None, alias="sourceMessageId")
    dlq_id: str | None = Field(None, alias="dlqId")
    source_body: str = Field(alias="sourceBody", max_length=1_000_000)

    @classmethod
    def from_body(cls, body: bytes) -> FailureCallback:
        """Parse a callback body; ``BadRequest`` if it is not JSON, ``ValidationFailed`` else."""
        return _validate(cls, body)

    def job(self) -> JobPayload:
        """The job whose delivery failed, decoded from the base64 ``sourceBody``."""
        try:
            raw = base64.b64decode(self.source_body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest("sourceBody is not valid base64.") from exc
        return JobPayload.from_body(raw)


def _validate(model: type[_M], body: bytes) -> _M:
    """Validate ``body`` as ``model``, translating pydantic's error into ``ValidationFailed``."""
    try:
        return model.model_validate(_json_object(body))
    except ValidationError as exc:
        fields = [{"loc": list(err["loc"]), "msg": err["msg"]} for err in exc.errors()]
        raise ValidationFailed(details={"fields": fields}) from exc


def _json_object(body: bytes) -> dict[str, Any]:
    """Decode a JSON object from UTF-8 bytes, translating failures into our errors."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest("Body is not valid UTF-8 JSON.") from exc
    if not isinstance(data, dict):
        raise ValidationFailed.field([], "Expected a JSON object.")
    return data
