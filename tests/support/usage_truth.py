"""What Postgres implies a user's ``/v1/usage`` must say, and the assertion that it does.

Redis counters are a cache of the ledger: after any fault (Redis lost, Postgres down,
a worker killed, a lease expired, an aborted admission) the API must report exactly what
the generations table implies. The rules are written out here as SQL on purpose, not
taken from the repositories, so a wrong seed query cannot agree with itself:

- monthly used: generations of the month neither ``failed`` nor ``cancelled`` (both are
  refunded) that the pool paid (``credit_id IS NULL``);
- hourly used: generations of the hour, failed and cancelled ones included (SPEC §2),
  except those that never ran: an undone admission, failed ``ENQUEUE_FAILED`` before
  anything ran (SPEC §9), and one cancelled while queued (never started);
- full regens used: ``regen_full`` of the month neither ``failed`` nor ``cancelled``;
- concurrency in use: generations ``queued`` or ``running`` (each holds one lease);
- each credit (pack or grant) not expired shows ``units - removed_units`` as its limit
  and its generations neither ``failed`` nor ``cancelled`` as used.

The periods are the ones the answer itself reports (``period``; the hour that ends at
``hourly.resets_at``), so an hour or month turning between the call and the query cannot
make the comparison fail or pass by accident.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.db.connection import connect

__all__ = ["assert_usage_matches_postgres", "postgres_credits", "postgres_usage"]

_QUERY = """
SELECT
  count(*) FILTER (WHERE period_month = :month AND status NOT IN ('failed', 'cancelled')
                     AND credit_id IS NULL),
  count(*) FILTER (WHERE period_hour = :hour
                     AND NOT (status = 'failed' AND error_code = 'ENQUEUE_FAILED')
                     AND NOT (status = 'cancelled' AND started_at IS NULL)),
  count(*) FILTER (WHERE period_month = :month AND kind = 'regen_full'
                     AND status NOT IN ('failed', 'cancelled')),
  count(*) FILTER (WHERE status IN ('queued', 'running'))
FROM generations WHERE owner_id = :owner
"""


_CREDITS = """
SELECT c.id::text, c.source, c.units - c.removed_units,
  (SELECT count(*) FROM generations g
   WHERE g.credit_id = c.id AND g.status NOT IN ('failed', 'cancelled'))
FROM credits c
WHERE c.owner_id = :owner AND c.units > c.removed_units AND c.expires_at > CAST(:now AS timestamptz)
ORDER BY c.expires_at, c.id
"""


def postgres_credits(database_url: str, user_id: str, now: datetime) -> list[dict[str, Any]]:
    """The user's credits not expired at ``now`` as Postgres implies them."""
    conn = connect(database_url)
    try:
        rows = conn.run(_CREDITS, owner=user_id, now=now)
    finally:
        conn.close()
    return [{"id": r[0], "source": r[1], "limit": int(r[2]), "used": int(r[3])} for r in rows]


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
    response: httpx.Response, database_url: str, user_id: str, now: datetime | None = None
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
    shown = [
        {k: item[k] for k in ("id", "source", "limit", "used")} for item in body["credits"]["items"]
    ]
    # Credits are listed while not expired at the usage call's script time: ``now``
    # when a test moved that time, else the wall clock.
    at = now or datetime.now(UTC)
    from_pg = postgres_credits(database_url, user_id, at)
    assert shown == from_pg, f"/v1/usage credits {shown} != Postgres {from_pg}"
    left = sum(max(0, c["limit"] - c["used"]) for c in from_pg)
    assert body["credits"]["remaining"] == left
    return body
