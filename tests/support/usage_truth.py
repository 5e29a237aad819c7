"""What Postgres implies a user's ``/v1/usage`` must say, and the assertion that it does.

Redis counters are a cache of the ledger: after any fault (Redis lost, Postgres down,
a worker killed, a lease expired, an aborted admission) the API must report exactly what
the generations table implies. The rules are written out here as SQL on purpose, not
taken from the repositories, so a wrong seed query cannot agree with itself:

- monthly used: generations of the month neither ``failed`` nor ``cancelled`` (both are
  refunded);
- hourly used: generations of the hour, failed and cancelled ones included (SPEC §2),
  except those that never ran: an undone admission, failed ``ENQUEUE_FAILED`` before
  anything ran (SPEC §9), and one cancelled while queued (never started);
- full regens used: ``regen_full`` of the month neither ``failed`` nor ``cancelled``;
- concurrency in use: generations ``queued`` or ``running`` (each holds one lease).

The periods are the ones the answer itself reports (``period``; the hour that ends at
``hourly.resets_at``), so an hour or month turning between the call and the query cannot
make the comparison fail or pass by accident.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from shared.db.connection import connect

__all__ = ["assert_usage_matches_postgres", "postgres_usage"]

_QUERY = """
SELECT
  count(*) FILTER (WHERE period_month = :month AND status NOT IN ('failed', 'cancelled')),
  count(*) FILTER (WHERE period_hour = :hour
                     AND NOT (status = 'failed' AND error_code = 'ENQUEUE_FAILED')
                     AND NOT (status = 'cancelled' AND started_at IS NULL)),
  count(*) FILTER (WHERE period_month = :month AND kind = 'regen_full'
                     AND status NOT IN ('failed', 'cancelled')),
  count(*) FILTER (WHERE status IN ('queued', 'running'))
FROM generations WHERE owner_id = :owner
"""


def _hour_of(resets_at: str) -> str:
    end = datetime.fromisoformat(resets_at.replace("Z", "+00:00"))
    return (end - timedelta(hours=1)).strftime("%Y%m%d%H")


def postgres_usage(database_url: str, user_id: str, month: str, hour: str) -> dict[str, int]:
    """The usage Postgres implies for ``month`` ('YYYY-MM') and ``hour`` ('YYYYMMDDHH')."""
    conn = connect(database_url)
    try:
        rows = conn.run(_QUERY, owner=user_id, month=month, hour=hour)
    finally:
        conn.close()
    monthly, hourly, full, in_use = (int(v) for v in rows[0])
    return {"monthly": monthly, "hourly": hourly, "full_regens": full, "in_use": in_use}


def assert_usage_matches_postgres(
    response: httpx.Response, database_url: str, user_id: str
) -> dict[str, Any]:
    """``response`` (a ``GET /v1/usage`` of ``user_id``) equals what Postgres implies.

    Returns the usage body, for further checks."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    reported = {
        "monthly": body["generations"]["used"],
        "hourly": body["hourly"]["used"],
        "full_regens": body["full_regens"]["used"],
        "in_use": body["concurrency"]["in_use"],
    }
    month, hour = body["period"], _hour_of(body["hourly"]["resets_at"])
    implied = postgres_usage(database_url, user_id, month, hour)
    assert reported == implied, f"/v1/usage {reported} != Postgres {implied} ({month}, {hour})"
    return body
