"""Observability: structured JSON logs with request context and redaction."""

from shared.observability.logging import (
    REDACTED,
    JsonFormatter,
    bind,
    configure_logging,
    context_fields,
    log_event,
    new_request_id,
    redact,
    resolve_request_id,
    trace_from_headers,
)

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "bind",
    "configure_logging",
    "context_fields",
    "log_event",
    "new_request_id",
    "redact",
    "resolve_request_id",
    "trace_from_headers",
]
