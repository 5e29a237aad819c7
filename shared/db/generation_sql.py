"""The generations table's SQL pieces, spelled once for the repository's parts
(``generations``: reads and status moves; ``generation_inserts``; ``generation_counts``):
its columns and row mapping, the INSERT both creating statements share, the usage rules
as predicates, and the error codes a generation can end with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final
from uuid import UUID

from shared.db.models import Generation, GenerationKind, GenerationStatus, charged_sql
from shared.plans import PlanName

__all__ = [
    "CANCELLED",
    "CANCELLED_MESSAGE",
    "CANCEL_SCOPE",
    "ENQUEUE_FAILED",
    "ERROR_CODE_MAX",
    "ERROR_MESSAGE_MAX",
    "GENERATION_COLS",
    "HOUR_GIVEN_BACK_NOT",
    "INSERT_COLS",
    "INSERT_ROW",
    "NOTICES_CTE",
    "REFUNDED_NOT",
    "fence",
    "generation_from_row",
    "insert_params",
]

GENERATION_COLS = (
    "id, owner_id, draft_id, kind, status, requested_variants, params, plan, period_month, "
    "period_hour, provider, model, lane, request_id, idempotency_scope, idempotency_key, "
    "request_fingerprint, error_code, error_message, attempts, created_at, started_at, "
    "completed_at, cancel_requested_at, credit_id"
)
ERROR_MESSAGE_MAX: Final = 500  # schema.sql bound on generations.error_message
ERROR_CODE_MAX: Final = 64
CANCEL_SCOPE: Final = "generation_cancel"
"""The idempotency scope of POST /v1/generations/{id}/cancel (its keys: ``cancel_keys``)."""
CANCELLED: Final = "CANCELLED"
"""The error code of a cancelled generation (its ``error`` tells the client why it ended)."""
CANCELLED_MESSAGE: Final = "The generation was cancelled by its owner."
ENQUEUE_FAILED: Final = "ENQUEUE_FAILED"
"""The code of a generation whose admission was undone (``fail_and_forget_key``): it never
ran, so its hourly unit was given back too (SPEC §9) and the hour count skips it."""


# The usage rules, one spelling each (the seed counts must agree with the refunds):
# a failed or cancelled generation gave its monthly (and full-regen) unit back; its hourly
# unit only when it never ran: an undone admission (failed ENQUEUE_FAILED, SPEC §9) or a
# cancel while it was still queued (never started, so started_at is NULL).
REFUNDED_NOT: Final = charged_sql()
HOUR_GIVEN_BACK_NOT: Final = (
    "NOT ((status = 'failed' AND error_code IS NOT DISTINCT FROM CAST(:aborted AS text)) "
    "OR (status = 'cancelled' AND started_at IS NULL))"
)


def fence(attempt: int | None) -> str:
    """The claim guard of a terminal move; None: whichever claim (tests, seeding)."""
    return "" if attempt is None else " AND attempts = CAST(:attempt AS int)"


def generation_from_row(row: list[Any]) -> Generation:
    return Generation(
        id=row[0],
        owner_id=row[1],
        draft_id=row[2],
        kind=GenerationKind(row[3]),
        status=GenerationStatus(row[4]),
        requested_variants=row[5],
        params=row[6] or {},
        plan=PlanName(row[7]),
        period_month=row[8],
        period_hour=row[9],
        provider=row[10],
        model=row[11],
        lane=row[12],
        request_id=row[13],
        idempotency_scope=row[14],
        idempotency_key=row[15],
        request_fingerprint=row[16],
        error_code=row[17],
        error_message=row[18],
        attempts=row[19],
        created_at=row[20],
        started_at=row[21],
        completed_at=row[22],
        cancel_requested_at=row[23],
        credit_id=row[24],
    )


# The INSERT both creating statements share: its column list, its VALUES row and (in
# ``insert_params``) the parameters they bind.
INSERT_COLS = (
    "id, owner_id, draft_id, kind, requested_variants, params, plan, period_month, "
    "period_hour, provider, model, lane, request_id, idempotency_scope, idempotency_key, "
    "request_fingerprint, credit_id"
)
INSERT_ROW = (
    "CAST(:id AS uuid), :owner, CAST(:draft AS uuid), :kind, CAST(:n AS int), "
    "CAST(:params AS jsonb), :plan, :month, :hour, :provider, :model, :lane, :request_id, "
    ":scope, :key, :fingerprint, CAST(:credit AS uuid)"
)


# The notice outbox rows written by the same statement as the generation (only when the
# generation is inserted): ``:notices`` is a JSON list of {id, kind, period}.
NOTICES_CTE = """
    n AS (
        INSERT INTO notices (id, owner_id, kind, period, generation_id)
        SELECT x.id, g.owner_id, x.kind, x.period, g.id
        FROM g, jsonb_to_recordset(CAST(:notices AS jsonb)) AS x(id uuid, kind text, period text)
        ON CONFLICT ON CONSTRAINT notices_once_per_period DO NOTHING
    )"""


def insert_params(
    *,
    id: UUID,
    owner_id: str,
    draft_id: UUID,
    kind: GenerationKind,
    requested_variants: int,
    plan: PlanName,
    period_month: str,
    period_hour: str,
    provider: str,
    model: str,
    lane: str,
    request_id: str,
    params: Mapping[str, Any] | None,
    idempotency_scope: str | None,
    idempotency_key: str | None,
    request_fingerprint: str | None,
    credit_id: str | None = None,
    notices: str = "[]",
) -> dict[str, Any]:
    return {
        "id": str(id),
        "owner": owner_id,
        "draft": str(draft_id),
        "kind": GenerationKind(kind).value,
        "n": requested_variants,
        "params": json.dumps(dict(params or {})),
        "plan": PlanName(plan).value,
        "month": period_month,
        "hour": period_hour,
        "provider": provider,
        "model": model,
        "lane": str(lane),
        "request_id": request_id,
        "scope": idempotency_scope,
        "key": idempotency_key,
        "fingerprint": request_fingerprint,
        "credit": credit_id,
        "notices": notices,
    }
