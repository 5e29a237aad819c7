"""GET /v1/admin/costs and POST /worker/rollup over HTTP (SPEC §10), clock pinned.

The server runs on a database of its own (tests/support/ledger.py): the rollup and the
report aggregate every user's rows and keep one watermark per database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devtools.compose import dev_container
from shared.bootstrap import Container
from shared.queue import WORKER_ROLLUP_PATH, sign_qstash
from tests.e2e.api_support import assert_error
from tests.support.ledger import Row, daily_rows, reporting_database, reset, seed
from tests.support.worker_env import SIGNING_CURRENT, worker_settings

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


@pytest.fixture(scope="module")
def report_url() -> Iterator[str]:
    with reporting_database() as url:
        yield url


@pytest.fixture
def costs_env(
    base_env: dict[str, str],
    container: Container,
    report_url: str,
    use_container: Callable[[Container], Container],
) -> Iterator[Container]:
    settings = worker_settings(base_env, DATABASE_URL=report_url, SPEND_ALERT_USD="0.5")
    c = dev_container(settings, clock=FixedClock(), redis=container.redis)
    reset(c.db)
    use_container(c)
    yield c
    c.db.close()


@pytest.fixture
def admin(token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token('ops-admin', admin=True)}"}


def costs(client: httpx.Client, headers: dict[str, str], **query: str) -> dict[str, Any]:
    r = client.get("/v1/admin/costs", params=query, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def rollup(client: httpx.Client, c: Container, *, signed: bool = True) -> httpx.Response:
    url = c.settings.effective_worker_url + WORKER_ROLLUP_PATH
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["Upstash-Signature"] = sign_qstash(b"{}", url, SIGNING_CURRENT)
    return client.post(WORKER_ROLLUP_PATH, content=b"{}", headers=headers)


def at(day: str, clock: str = "12:00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}+00:00")


LEDGER = [
    Row("alice", at("2026-11-29"), plan="pro", model="m1", cost_micro_usd=400_000),
    Row("alice", at("2026-11-30", "23:59:59.999999"), plan="pro", model="m2",
        cost_micro_usd=600_000),
    Row("bob", at("2026-11-30"), plan="basic", model="m1", cost_micro_usd=50_000, billable=False),
    Row("bob", at("2026-12-01", "00:00:00"), plan="basic", model="m1", cost_micro_usd=7),  # today
]  # fmt: skip


def test_costs_are_for_admins_only(
    client: httpx.Client, costs_env: Container, token: Callable[..., str]
) -> None:
    user = {"Authorization": f"Bearer {token('plain-user')}"}

    assert_error(client.get("/v1/admin/costs", headers=user), 403, "FORBIDDEN")
    assert_error(client.get("/v1/admin/costs?month=2026-11", headers=user), 403, "FORBIDDEN")
    assert_error(client.get("/v1/admin/costs"), 401, "UNAUTHENTICATED")


def test_rollup_then_costs_by_any_grouping(
    client: httpx.Client, costs_env: Container, admin: dict[str, str]
) -> None:
    seed(costs_env.db, LEDGER)

    ran = rollup(client, costs_env)

    assert ran.status_code == 200, ran.text
    assert ran.json() == {
        "from": "2026-11-28",  # the last 3 closed days (the ledger starts later)
        "to": "2026-11-30",
        "rows": 3,
        "rolled_through": "2026-11-30",
        "anomalies": 1,  # alice spent $0.60 > SPEND_ALERT_USD=0.5 on 11-30, median 0
    }
    by_plan = costs(client, admin, **{"from": "2026-11-29", "to": "2026-12-01"})
    assert {k: by_plan[k] for k in ("from", "to", "month", "group_by", "rolled_through")} == {
        "from": "2026-11-29",
        "to": "2026-12-01",
        "month": None,
        "group_by": "plan",
        "rolled_through": "2026-11-30",
    }
    rows = by_plan["rows"]
    assert [(r["group"], r["plan"], r["generations"], r["cost_micro_usd"]) for r in rows] == [
        ("pro", "pro", 2, 1_000_000),
        ("basic", "basic", 2, 50_007),  # 11-30 from the rollup + today from the ledger
    ]  # fmt: skip
    assert by_plan["totals"] == {
        "generations": 4,
        "failed": 1,
        "prompt_tokens": 400,
        "completion_tokens": 200,
        "cost_micro_usd": 1_050_007,
    }
    by_day_user = costs(
        client, admin, **{"from": "2026-11-30", "to": "2026-12-01"}, group_by="day,user"
    )
    rows = by_day_user["rows"]
    assert [(r["group"], r["day"], r["user"], r["failed"], r["cost_micro_usd"]) for r in rows] == [
        ("2026-11-30,alice", "2026-11-30", "alice", 0, 600_000),
        ("2026-11-30,bob", "2026-11-30", "bob", 1, 50_000),
        ("2026-12-01,bob", "2026-12-01", "bob", 0, 7),
    ]  # fmt: skip
    assert set(by_day_user["rows"][0]) == {
        "group", "day", "user", "generations", "failed", "prompt_tokens", "completion_tokens",
        "cost_micro_usd",
    }  # fmt: skip
    by_model = costs(client, admin, month="2026-11", group_by="model")
    assert (by_model["from"], by_model["to"], by_model["month"]) == (
        "2026-11-01",
        "2026-11-30",
        "2026-11",
    )
    assert [(r["group"], r["generations"]) for r in by_model["rows"]] == [("m2", 1), ("m1", 2)]
    totals_only = costs(client, admin, month="2026-12", group_by="")
    assert (totals_only["rows"], totals_only["totals"]["cost_micro_usd"]) == ([], 7)
    # No parameters: this month to date, by plan.
    default = costs(client, admin)
    assert (default["from"], default["to"], default["group_by"]) == (
        "2026-12-01",
        "2026-12-01",
        "plan",
    )


def test_the_report_before_any_rollup_reads_the_ledger(
    client: httpx.Client, costs_env: Container, admin: dict[str, str]
) -> None:
    seed(costs_env.db, LEDGER)
    before = costs(client, admin, month="2026-11", group_by="user,plan")
    assert rollup(client, costs_env).status_code == 200
    after = costs(client, admin, month="2026-11", group_by="user,plan")

    assert (before["rolled_through"], after["rolled_through"]) == (None, "2026-11-30")
    assert before["rows"] == after["rows"]
    assert before["totals"] == after["totals"]


@pytest.mark.parametrize(
    "query",
    [
        {"month": "2026-11", "from": "2026-11-01"},
        {"from": "2026-02-30"},
        {"from": "2026-12-02", "to": "2026-12-01"},
        {"from": "2025-01-01", "to": "2026-12-01"},
        {"group_by": "day,tenant"},
        {"group_by": "user,user"},
        {"month": "2026-13"},
        {"tenant": "x"},
    ],
    ids=[
        "month-and-from", "not-a-date", "from-after-to", "over-366-days", "unknown-group",
        "group-twice", "bad-month", "unknown-parameter",
    ],
)  # fmt: skip
def test_bad_cost_queries_are_422(
    client: httpx.Client, costs_env: Container, admin: dict[str, str], query: dict[str, str]
) -> None:
    assert_error(
        client.get("/v1/admin/costs", params=query, headers=admin), 422, "VALIDATION_FAILED"
    )


def test_rollup_refuses_an_unsigned_call_and_writes_nothing(
    client: httpx.Client, costs_env: Container
) -> None:
    seed(costs_env.db, LEDGER)

    assert_error(rollup(client, costs_env, signed=False), 401, "UNAUTHENTICATED")

    assert daily_rows(costs_env.db) == []
