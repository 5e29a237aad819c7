"""The one exception hierarchy. Every SPEC §3 error code is a class here.

    AppError                      code, status, details, retry_after
    ├── BadRequest (400)          INVALID_JSON / INVALID_CURSOR / INVALID_REQUEST_ID
    ├── Unauthenticated (401)
    ├── SubscriptionRequired (402)
    ├── Forbidden (403)
    ├── PlanFeatureUnavailable (403)
    ├── NotFound (404)
    ├── MethodNotAllowed (405)
    ├── Conflict (409)            IDEMPOTENCY_IN_PROGRESS / GENERATION_IN_PROGRESS /
    │                             GENERATION_FINISHED (a cancel after the job ended)
    ├── PreconditionFailed (412)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── ValidationFailed (422)    details.fields
    ├── IdempotencyKeyReused (422)
    ├── LimitExceeded (429)       MONTHLY_QUOTA_EXCEEDED / HOURLY_LIMIT_EXCEEDED /
    │                             CONCURRENCY_LIMIT / COOLDOWN_ACTIVE / FULL_REGEN_CAP_EXCEEDED
    ├── ServiceUnavailable (503)  SERVICE_UNAVAILABLE / PROVIDER_BUSY
    ├── UndeliverableJob (489)    INVALID_DELIVERY: a signed worker body that can never
    │                             be processed; QStash's non-retryable answer
    └── InternalError (500)

Adapters translate library errors (pg8000, redis, UpstashError, httpx, qstash) into
these at their boundary with ``raise … from exc``; ``shared.api`` renders them as the
SPEC error body in one place. Being limited is a value inside ``enforcement`` and
becomes a ``LimitExceeded`` only at the service boundary.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AppError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "IdempotencyKeyReused",
    "InternalError",
    "LimitExceeded",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PlanFeatureUnavailable",
    "PreconditionFailed",
    "ServiceUnavailable",
    "SubscriptionRequired",
    "Unauthenticated",
    "UndeliverableJob",
    "UnsupportedMediaType",
    "ValidationFailed",
]


class AppError(Exception):
    """Base of every error the API renders. Subclasses fix ``status`` and a default code."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "INTERNAL"
    default_message: ClassVar[str] = "Internal error."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.details: dict[str, Any] = details or {}
        self.retry_after = retry_after
        super().__init__(self.message)

    def body(self, request_id: str) -> dict[str, Any]:
        """The SPEC error body."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "request_id": request_id,
                "details": self.details,
            }
        }


class BadRequest(AppError):
    status = 400
    default_code = "INVALID_JSON"
    default_message = "Malformed request."


class Unauthenticated(AppError):
    status = 401
    default_code = "UNAUTHENTICATED"
    default_message = "Missing or invalid credentials."


class SubscriptionRequired(AppError):
    status = 402
    default_code = "SUBSCRIPTION_REQUIRED"
    default_message = "An active subscription is required."


class Forbidden(AppError):
    status = 403
    default_code = "FORBIDDEN"
    default_message = "Not allowed."


class PlanFeatureUnavailable(AppError):
    status = 403
    default_code = "PLAN_FEATURE_UNAVAILABLE"
    default_message = "Your plan does not include this feature."


class NotFound(AppError):
    status = 404
    default_code = "NOT_FOUND"
    default_message = "Not found."


class MethodNotAllowed(AppError):
    status = 405
    default_code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed."


class Conflict(AppError):
    status = 409
    default_code = "IDEMPOTENCY_IN_PROGRESS"
    default_message = "A request with this key is still being processed."


class PreconditionFailed(AppError):
    status = 412
    default_code = "PRECONDITION_FAILED"
    default_message = "The resource changed since it was read (If-Match mismatch)."


class PayloadTooLarge(AppError):
    status = 413
    default_code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body is too large."


class UnsupportedMediaType(AppError):
    status = 415
    default_code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Content-Type must be application/json."


class ValidationFailed(AppError):
    status = 422
    default_code = "VALIDATION_FAILED"
    default_message = "Request validation failed."

    @classmethod
    def field(cls, loc: list[str | int], msg: str) -> ValidationFailed:
        """One field error in the SPEC shape ``details.fields``."""
        return cls(details={"fields": [{"loc": loc, "msg": msg}]})


class IdempotencyKeyReused(AppError):
    status = 422
    default_code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with a different request body."


class LimitExceeded(AppError):
    status = 429
    default_code = "MONTHLY_QUOTA_EXCEEDED"
    default_message = "Limit exceeded."


class ServiceUnavailable(AppError):
    status = 503
    default_code = "SERVICE_UNAVAILABLE"
    default_message = "A dependency is unavailable; retry shortly."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("retry_after", 1)
        super().__init__(message, **kwargs)


class UndeliverableJob(AppError):
    """A correctly signed worker delivery whose body can never be processed (not JSON, a
    generation id that is not a UUID, NUL characters): retrying cannot help. 489 with
    ``Upstash-NonRetryable-Error: true`` is QStash's "do not retry" answer (the message
    goes to its dead-letter queue at once); ``shared.api.http`` adds the header."""

    status = 489
    default_code = "INVALID_DELIVERY"
    default_message = "The delivery's body cannot be processed; it will not be retried."


class InternalError(AppError):
    status = 500
    default_code = "INTERNAL"
