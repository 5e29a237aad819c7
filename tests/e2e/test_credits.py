"""Generation packs and support grants (credits) through the real local server.

The storm: a Basic user at 59/60 of the monthly pool holding a 50-generation pack, hit by
concurrent creates: exactly 51 are admitted (1 from the pool, 50 from the pack), every
other answer is 429 MONTHLY_QUOTA_EXCEEDED, and /v1/usage equals what Postgres implies.
Basic's burst (10 an hour) and concurrency (1) would stop the storm long before the pool
does, so this container's admission lifts exactly those two (and the provider cap): the
pool and the pack are the limits under test. Jobs are recorded, never delivered.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devtools.compose import dev_container
from shared.api.auth import authenticator_of
from shared.billing.packs import units_kept
from shared.bootstrap import Container, DbPlanSource, DbTruthSource, DbUsageSource
from shared.config import load_settings
from shared.enforcement import Enforcer
from shared.enforcement.scripts.common import epoch_ms
from shared.plans import PACKS, PLANS, Lane, PackName, PlanName
from shared.services.leases import charge_of, lease_of
from tests.e2e.api_support import RecordingQueue, sql
from tests.load._hammer import hammer
from tests.support.e2e import Api
from tests.support.fake_stripe import FakeStripe, checkout_session, event, signed_delivery
from tests.support.usage_truth import assert_usage_matches_postgres, postgres_credits

API_KEY = "sk_test_reel_credits"
WEBHOOK_SECRET = "whsec_reel_credits_" + secrets.token_hex(8)
RUN = secrets.token_hex(3)
PRICES = {
    "BASIC": f"price_basic_{RUN}",
    "STANDARD": f"price_standard_{RUN}",
    "PRO": f"price_pro_{RUN}",
    "PRO_BOOST": f"price_boost_{RUN}",
    "PACK_50": f"price_pack50_{RUN}",
    "PACK_200": f"price_pack200_{RUN}",
}
STORM_THREADS, STORM_PER_THREAD = 100, 10  # 1000 creates from 100 concurrent clients
BODY = {"brief": "3 reasons to drink water, upbeat", "platform": "tiktok"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY) as f:
        yield f


def _lifted_basic() -> dict[PlanName, Any]:
    """The plan table with Basic's burst and concurrency out of the way (its pool kept)."""
    basic = PLANS[PlanName.BASIC]
    lifted = replace(basic, generations_per_hour=100_000, concurrent_jobs=100_000)
    return {**PLANS, PlanName.BASIC: lifted}


@pytest.fixture
def credits_app(
    base_env: dict[str, str],
    container: Container,
    fake: FakeStripe,
    use_container: Callable[[Container], Container],
    pinned_clock: Any,
) -> Iterator[Container]:
    env = {
        **base_env,
        # Keys of its own: the storm's never-delivered jobs hold provider slots that the
        # session's other tests must not inherit.
        "REDIS_KEY_PREFIX": base_env["REDIS_KEY_PREFIX"] + "credits",
        "PROVIDER_CAP_INTERACTIVE": "100000",
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": fake.url,
        **{f"STRIPE_PRICE_{k}": v for k, v in PRICES.items()},
    }
    settings = load_settings(env)
    base = dev_container(settings, clock=container.clock, db=container.db, queue=RecordingQueue())
    enforcer = Enforcer(
        base.redis,
        base.keys,
        DbPlanSource(base.db, base.clock),
        DbUsageSource(base.db),
        lease_ttl_s=settings.lease_ttl_s,
        plan_cache_ttl_s=settings.plan_cache_ttl_s,
        provider_caps={lane: settings.provider_cap(lane) for lane in Lane},
        truth=DbTruthSource(base.db),
        plans_table=_lifted_basic(),
    )
    app = dev_container(
        settings,
        clock=container.clock,
        db=container.db,
        redis=base.redis,
        queue=base.built("queue"),
        enforcer=enforcer,
        authenticator=authenticator_of(container),
    )
    use_container(app)
    yield app
    redis = app.built("redis")
    if redis is not None and hasattr(redis, "close"):
        redis.close()


def _create(a: Api) -> httpx.Response:
    return a.post("/v1/create", BODY)


def _spend_pool(a: Api, n: int) -> None:
    for _ in range(n):
        r = _create(a)
        assert r.status_code == 202, r.text


def _usage(a: Api, database_url: str, now: datetime | None = None) -> dict[str, Any]:
    return assert_usage_matches_postgres(a.get("/v1/usage"), database_url, a.user_id, now)


def _deliver(client: httpx.Client, evt: dict[str, Any]) -> httpx.Response:
    payload, headers = signed_delivery(evt, WEBHOOK_SECRET)
    r = client.post("/webhooks/stripe", content=payload, headers=headers)
    assert r.status_code == 200, r.text
    return r


def _pack_session(user_id: str, pack: PackName, intent: str) -> dict[str, Any]:
    session = checkout_session(
        mode="payment",
        customer=None,
        metadata={"user_id": user_id, "product": "pack", "pack": pack.value},
        client_reference_id=user_id,
    )
    return {**session, "payment_intent": intent}


def _charge_refunded(intent: str, amount: int, refunded: int) -> dict[str, Any]:
    return {
        "id": f"ch_{secrets.token_hex(6)}",
        "object": "charge",
        "payment_intent": intent,
        "amount": amount,
        "amount_refunded": refunded,
        "refunded": refunded >= amount,
    }


def _buy_pack(client: httpx.Client, user_id: str, pack: PackName) -> str:
    intent = f"pi_{secrets.token_hex(6)}"
    r = _deliver(client, event("checkout.session.completed", _pack_session(user_id, pack, intent)))
    assert r.json()["result"] == "applied"
    return intent


def _credit_of(database_url: str, user_id: str) -> list[list[Any]]:
    return sql(
        database_url,
        "SELECT id::text, source, units, removed_units FROM credits WHERE owner_id = :o "
        "ORDER BY created_at",
        o=user_id,
    )


def _sources(database_url: str, user_id: str) -> Counter[str]:
    rows = sql(
        database_url,
        "SELECT coalesce(credit_id::text, 'pool'), count(*) FROM generations "
        "WHERE owner_id = :o AND status <> 'failed' GROUP BY 1",
        o=user_id,
    )
    return Counter({str(r[0]): int(r[1]) for r in rows})


def _fail_like_the_worker(app: Container, owner: str, generation_id: str) -> bool:
    """A job's failure as the worker records it: Postgres ``failed``, then the refund of
    the unit to whichever source paid it (``finish``, exactly once)."""
    with app.db.uow() as uow:
        gen = uow.generations.get(owner, uuid.UUID(generation_id))
        assert gen is not None
        uow.generations.mark_failed(gen.id, "PROVIDER_ERROR", "failed", app.now())
        uow.commit()
    return app.enforcer.finish(lease_of(gen, None), charge_of(gen))


# ---- the storm ----------------------------------------------------------------------


def test_storm_at_59_of_60_with_a_50_pack_admits_exactly_51(
    credits_app: Container, api: Callable[..., Api], client: httpx.Client, database_url: str,
    server: Any,
) -> None:  # fmt: skip
    user = api("basic")
    _spend_pool(user, PLANS[PlanName.BASIC].generations_per_month - 1)  # 59 of 60
    _buy_pack(client, user.user_id, PackName.PACK_50)
    before = _usage(user, database_url)
    assert before["generations"]["remaining"] == 1
    assert before["credits"]["remaining"] == PACKS[PackName.PACK_50].generations

    token = user.headers["Authorization"].removeprefix("Bearer ")
    started = time.monotonic()
    results = hammer(server.url, token, STORM_THREADS, STORM_PER_THREAD, time.time() + 0.5)
    elapsed = time.monotonic() - started
    statuses = Counter(status for status, _, _ in results)
    codes = Counter(code for status, code, _ in results if status != 202)
    print(f"storm: {len(results)} creates in {elapsed:.1f}s -> {dict(statuses)} {dict(codes)}")

    assert len(results) == STORM_THREADS * STORM_PER_THREAD == 1000
    assert statuses[202] == 1 + PACKS[PackName.PACK_50].generations  # exactly 51
    assert codes == Counter({"MONTHLY_QUOTA_EXCEEDED": len(results) - 51})
    (credit_id, *_), = _credit_of(database_url, user.user_id)  # fmt: skip
    assert _sources(database_url, user.user_id) == Counter({"pool": 60, credit_id: 50})
    after = _usage(user, database_url)
    assert after["generations"]["used"] == 60
    assert after["credits"]["remaining"] == 0
    assert after["credits"]["items"][0]["used"] == 50


def test_refunds_go_back_to_the_source_that_paid_exactly_once(
    credits_app: Container, api: Callable[..., Api], client: httpx.Client, database_url: str
) -> None:
    user = api("basic")
    _spend_pool(user, PLANS[PlanName.BASIC].generations_per_month)
    _buy_pack(client, user.user_id, PackName.PACK_50)
    paid_by_pack = [_create(user).json()["generation_id"] for _ in range(3)]
    pool_gen = sql(
        database_url,
        "SELECT id::text FROM generations WHERE owner_id = :o AND credit_id IS NULL LIMIT 1",
        o=user.user_id,
    )[0][0]
    usage = _usage(user, database_url)
    assert (usage["generations"]["used"], usage["credits"]["remaining"]) == (60, 47)

    owner = user.user_id
    assert _fail_like_the_worker(credits_app, owner, paid_by_pack[0])
    assert _fail_like_the_worker(credits_app, owner, pool_gen)
    # A second refund of the same generations gives nothing back.
    assert not credits_app.enforcer.refund(_charge_of(credits_app, owner, paid_by_pack[0]))
    assert not credits_app.enforcer.refund(_charge_of(credits_app, owner, pool_gen))
    usage = _usage(user, database_url)
    assert (usage["generations"]["used"], usage["credits"]["remaining"]) == (59, 48)

    # The pool is used first again, then the pack.
    first, second = _create(user).json(), _create(user).json()
    credit = sql(
        database_url,
        "SELECT credit_id::text FROM generations WHERE id = CAST(:a AS uuid) "
        "UNION ALL SELECT credit_id::text FROM generations WHERE id = CAST(:b AS uuid)",
        a=first["generation_id"],
        b=second["generation_id"],
    )
    assert credit[0][0] is None
    assert credit[1][0] is not None
    usage = _usage(user, database_url)
    assert (usage["generations"]["used"], usage["credits"]["remaining"]) == (60, 47)


def _charge_of(app: Container, owner: str, generation_id: str) -> Any:
    with app.db.uow() as uow:
        gen = uow.generations.get(owner, uuid.UUID(generation_id))
    assert gen is not None
    return charge_of(gen)


def test_a_credit_expires_at_its_boundary_on_a_moved_clock(
    credits_app: Container, api: Callable[..., Api], database_url: str
) -> None:
    user = api("basic")
    _spend_pool(user, PLANS[PlanName.BASIC].generations_per_month)
    r = user.client.post(
        "/v1/admin/grants",
        json={"user_id": user.user_id, "generations": 5, "reason": "outage goodwill", "days": 1},
        headers=user.admin_headers,
    )
    assert r.status_code == 201, r.text
    expires_ms = epoch_ms(datetime.fromisoformat(r.json()["expires_at"].replace("Z", "+00:00")))
    enforcer = credits_app.enforcer

    # Script time two seconds before the expiry: the grant still pays.
    enforcer.time_offset_ms = expires_ms - int(time.time() * 1000) - 2_000
    assert _create(user).status_code == 202
    # Script time at (or just past) the expiry: expired, and the pool is spent.
    enforcer.time_offset_ms = expires_ms - int(time.time() * 1000)
    refused = _create(user)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "MONTHLY_QUOTA_EXCEEDED"
    at_expiry = datetime.fromisoformat(r.json()["expires_at"].replace("Z", "+00:00"))
    # (Only the credits are compared at the moved time: a day on, the leases of the
    # never-delivered jobs have expired in Redis while Postgres still calls them queued.)
    moved = user.get("/v1/usage").json()
    assert moved["credits"] == {"remaining": 0, "items": []}
    assert postgres_credits(database_url, user.user_id, at_expiry) == []
    enforcer.time_offset_ms = 0
    now = user.get("/v1/usage").json()
    expected = postgres_credits(database_url, user.user_id, datetime.now(UTC))
    assert [
        {k: i[k] for k in ("id", "source", "limit", "used")} for i in now["credits"]["items"]
    ] == expected
    assert (expected[0]["used"], expected[0]["limit"]) == (1, 5)


def test_stripe_pack_events_replayed_and_out_of_order(
    credits_app: Container,
    api: Callable[..., Api],
    client: httpx.Client,
    database_url: str,
    fake: FakeStripe,
) -> None:
    user = api("basic")
    # Checkout: a one-off payment of the pack's price, tagged with the user and the pack.
    r = user.post("/v1/billing/packs/checkout", {"pack": "pack_50"})
    assert r.status_code == 201, r.text
    sent = fake.calls("/v1/checkout/sessions")[-1]
    assert sent["mode"] == "payment"
    assert sent["line_items"][0]["price"] == PRICES["PACK_50"]
    assert sent["metadata"] == {"user_id": user.user_id, "product": "pack", "pack": "pack_50"}

    units, amount = PACKS[PackName.PACK_50].generations, PACKS[PackName.PACK_50].price_cents
    # Out of order: pack B's full refund arrives before its payment completes.
    intent_b = f"pi_{secrets.token_hex(6)}"
    refund_b = event("charge.refunded", _charge_refunded(intent_b, amount, amount))
    paid_b = event(
        "checkout.session.completed", _pack_session(user.user_id, PackName.PACK_50, intent_b)
    )
    assert _deliver(client, refund_b).json()["result"] == "applied"
    assert _credit_of(database_url, user.user_id) == []
    assert _deliver(client, paid_b).json()["result"] == "applied"
    (b_id, _, b_units, b_removed), = _credit_of(database_url, user.user_id)  # fmt: skip
    assert (b_units, b_removed) == (units, units)  # bought and refunded: nothing to spend

    # Pack A paid; its completion delivered twice, then again as a second event type.
    intent_a = f"pi_{secrets.token_hex(6)}"
    session_a = _pack_session(user.user_id, PackName.PACK_50, intent_a)
    paid_a = event("checkout.session.completed", session_a)
    results = [_deliver(client, paid_a).json()["result"] for _ in range(2)]
    async_a = event("checkout.session.async_payment_succeeded", session_a)
    results += [_deliver(client, async_a).json()["result"]]
    assert results == ["applied", "duplicate", "ignored"]
    # Replays of B's pair, in the other order, change nothing either.
    assert _deliver(client, paid_b).json()["result"] == "duplicate"
    assert _deliver(client, refund_b).json()["result"] == "duplicate"
    usage = _usage(user, database_url)
    assert usage["credits"]["remaining"] == units

    # 5 of pack A used, then a full refund: only the 45 unused go; replayed, nothing more.
    _spend_pool(user, PLANS[PlanName.BASIC].generations_per_month + 5)
    refund_a = event("charge.refunded", _charge_refunded(intent_a, amount, amount))
    assert _deliver(client, refund_a).json()["result"] == "applied"
    assert _deliver(client, refund_a).json()["result"] == "duplicate"
    again = event("charge.refunded", _charge_refunded(intent_a, amount, amount))
    assert _deliver(client, again).json()["result"] == "ignored"
    rows = {r[0]: (r[2], r[3]) for r in _credit_of(database_url, user.user_id)}
    assert rows[b_id] == (units, units)
    a_id = next(k for k in rows if k != b_id)
    assert rows[a_id] == (units, units - 5)
    usage = _usage(user, database_url)
    assert usage["credits"]["remaining"] == 0
    assert [i["used"] for i in usage["credits"]["items"]] == [5]
    refused = _create(user)
    assert refused.status_code == 429
    print(
        f"stripe: pack B {rows[b_id]}, pack A {rows[a_id]} (units, removed);",
        f"usage {usage['credits']}",
    )


def test_grants_are_audited_and_reversed_only_as_far_as_unused(
    credits_app: Container, api: Callable[..., Api], database_url: str
) -> None:
    user = api("basic")
    grant = {"user_id": user.user_id, "generations": 3, "reason": "ticket 4411: double charge"}
    denied = user.post("/v1/admin/grants", grant)
    assert denied.status_code == 403
    bad = user.client.post(
        "/v1/admin/grants", json={**grant, "generations": 0}, headers=user.admin_headers
    )
    assert bad.status_code == 422
    r = user.client.post("/v1/admin/grants", json=grant, headers=user.admin_headers)
    assert r.status_code == 201, r.text
    credit_id = r.json()["id"]
    _spend_pool(user, PLANS[PlanName.BASIC].generations_per_month + 1)  # 1 of the grant used
    usage = _usage(user, database_url)
    assert usage["credits"]["items"][0]["source"] == "grant"
    assert usage["credits"]["remaining"] == 2

    reverse = user.client.post(
        f"/v1/admin/grants/{credit_id}/reverse", json={"reason": "granted twice"},
        headers=user.admin_headers,
    )  # fmt: skip
    assert reverse.status_code == 200, reverse.text
    assert (reverse.json()["removed"], reverse.json()["used"]) == (2, 1)
    again = user.client.post(
        f"/v1/admin/grants/{credit_id}/reverse", json={}, headers=user.admin_headers
    )
    assert again.json()["removed"] == 0
    assert _create(user).status_code == 429
    usage = _usage(user, database_url)
    assert usage["credits"]["remaining"] == 0
    audit = sql(
        database_url,
        "SELECT action, units, actor, reason FROM credit_events "
        "WHERE credit_id = CAST(:c AS uuid) ORDER BY id",
        c=credit_id,
    )
    admin = "admin-" + user.user_id
    assert audit == [
        ["granted", 3, admin, "ticket 4411: double charge"],
        ["reversed", 2, admin, "granted twice"],
    ]
    # The ledger's source column names the grant for the generation it paid.
    missing = user.client.post(
        f"/v1/admin/grants/{uuid.uuid4()}/reverse", json={}, headers=user.admin_headers
    )
    assert missing.status_code == 404


def test_ledger_costs_export_and_deletion_know_the_source(
    credits_app: Container, api: Callable[..., Api], database_url: str
) -> None:
    from shared.db import GenerationKind, LedgerEntry

    user = api("basic")
    grant = {"user_id": user.user_id, "generations": 4, "reason": "beta tester"}
    r = user.client.post("/v1/admin/grants", json=grant, headers=user.admin_headers)
    assert r.status_code == 201, r.text
    credit_id = r.json()["id"]
    _spend_pool(user, PLANS[PlanName.BASIC].generations_per_month)
    paid = _create(user).json()["generation_id"]  # the pool is spent: the grant pays
    # The worker's ledger row for it (as the worker writes it: no source given).
    with credits_app.db.uow() as uow:
        gen = uow.generations.get(user.user_id, uuid.UUID(paid))
        assert gen is not None
        assert str(gen.credit_id) == credit_id
        uow.ledger.record(
            LedgerEntry(
                generation_id=gen.id, owner_id=user.user_id, month=gen.period_month,
                plan=gen.plan, kind=GenerationKind.CREATE, provider=gen.provider,
                model=gen.model, prompt_tokens=10, completion_tokens=20, cost_micro_usd=7,
                billable=True,
            )
        )  # fmt: skip
        uow.commit()
    ledger = sql(
        database_url,
        "SELECT source, credit_id::text FROM usage_ledger WHERE generation_id = CAST(:g AS uuid)",
        g=paid,
    )
    assert ledger == [["grant", credit_id]]
    costs = user.client.get(
        "/v1/admin/costs", params={"group_by": "user,source"}, headers=user.admin_headers
    )
    assert costs.status_code == 200, costs.text
    mine = [row for row in costs.json()["rows"] if row["user"] == user.user_id]
    assert mine == [
        {
            "group": f"{user.user_id},grant", "user": user.user_id, "source": "grant",
            "generations": 1, "failed": 0, "prompt_tokens": 10, "completion_tokens": 20,
            "cost_micro_usd": 7,
        }
    ]  # fmt: skip

    export = user.get("/v1/me/export")
    assert export.status_code == 200
    (exported,) = export.json()["credits"]
    assert (exported["id"], exported["source"], exported["used"]) == (credit_id, "grant", 1)
    assert exported["remaining"] == 3

    deleted = user.client.delete("/v1/me", headers=user.headers)
    assert deleted.status_code == 202, deleted.text
    after = sql(
        database_url,
        "SELECT owner_id, units, removed_units FROM credits WHERE id = CAST(:c AS uuid)",
        c=credit_id,
    )
    assert after[0][0].startswith("deleted:")  # the record stays, naming nobody
    assert after[0][1:] == [4, 3]  # the unused three are forfeited
    events = sql(
        database_url,
        "SELECT action, units, actor FROM credit_events WHERE credit_id = CAST(:c AS uuid) "
        "ORDER BY id",
        c=credit_id,
    )
    assert events[-1] == ["forfeited", 3, "account-deletion"]


# ---- usage notices ---------------------------------------------------------------------


def test_each_notice_is_written_once_under_a_storm(
    credits_app: Container, api: Callable[..., Api], database_url: str, server: Any
) -> None:
    user = api("basic")
    grant = {"user_id": user.user_id, "generations": 20, "reason": "launch promo"}
    r = user.client.post("/v1/admin/grants", json=grant, headers=user.admin_headers)
    assert r.status_code == 201, r.text
    credit_id = r.json()["id"]

    token = user.headers["Authorization"].removeprefix("Bearer ")
    results = hammer(server.url, token, STORM_THREADS, STORM_PER_THREAD, time.time() + 0.5)
    statuses = Counter(status for status, _, _ in results)
    assert statuses[202] == PLANS[PlanName.BASIC].generations_per_month + 20  # 80
    notices = sql(
        database_url,
        "SELECT kind, period FROM notices WHERE owner_id = :o ORDER BY kind",
        o=user.user_id,
    )
    month = _usage(user, database_url)["period"]
    assert notices == [["credits_low", credit_id], ["pool_100", month], ["pool_80", month]]
    print(f"notices storm: {dict(statuses)} -> {notices}")

    listed = user.get("/v1/notices").json()
    assert listed["unread"] == 3
    assert {n["kind"] for n in listed["items"]} == {"pool_80", "pool_100", "credits_low"}
    first = listed["items"][0]["id"]
    marked = user.post(f"/v1/notices/{first}/read", {})
    assert marked.status_code == 200
    assert marked.json()["read"] is True
    assert user.get("/v1/notices").json()["unread"] == 2
    stranger = api("basic")
    assert stranger.post(f"/v1/notices/{first}/read", {}).status_code == 404


class _Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, dict[str, str], str]] = []
        self.fail = fail

    def publish(self, url: str, body: str, headers: Any, dedup_id: str) -> None:
        if self.fail:
            raise RuntimeError("qstash down")
        self.sent.append((url, body, dict(headers), dedup_id))


def _docs_verify() -> Callable[..., bool]:
    """The verification snippet of docs/quota.md, run as an operator would paste it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "quota.md").read_text()
    section = text.split("## Usage notices", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/quota.md", "exec"), scope)
    verify: Callable[..., bool] = scope["verify"]
    return verify


def test_notices_reach_the_webhook_once_signed_as_the_docs_verify(
    credits_app: Container, api: Callable[..., Api], database_url: str
) -> None:
    from shared.services.notices import SIGNATURE_HEADER, publish_pending

    user = api("basic")
    _spend_pool(user, 48)  # 80% of Basic's 60
    secret, url = "whsec_notice_" + secrets.token_hex(4), "https://ops.example.com/notices"
    failing = _Recorder(fail=True)
    down = publish_pending(credits_app.db, failing, url=url, secret=secret, now=datetime.now(UTC))
    assert down.published == 0
    assert down.failed >= 1  # back in the outbox for the next run
    recorder = _Recorder()
    publish_pending(credits_app.db, recorder, url=url, secret=secret, now=datetime.now(UTC))
    mine = [s for s in recorder.sent if f'"user_id":"{user.user_id}"' in s[1]]
    assert len(mine) == 1
    sent_url, body, headers, dedup = mine[0]
    assert sent_url == url
    verify = _docs_verify()
    assert verify(secret, headers[SIGNATURE_HEADER], body.encode())
    assert not verify(
        secret, headers[SIGNATURE_HEADER], body.replace("pool_80", "pool_99").encode()
    )
    assert not verify("whsec_other", headers[SIGNATURE_HEADER], body.encode())
    assert '"kind":"pool_80"' in body
    assert dedup in body
    again = _Recorder()
    publish_pending(credits_app.db, again, url=url, secret=secret, now=datetime.now(UTC))
    assert [s for s in again.sent if f'"user_id":"{user.user_id}"' in s[1]] == []


def test_credits_add_generations_not_speed(
    credits_app: Container, api: Callable[..., Api], database_url: str
) -> None:
    """The burst and the concurrency limit still bind a create a credit would pay for
    (Standard's limits are not lifted here), and a refused create spends no credit."""
    from shared.redis.keys import hour_label
    from tests.e2e.api_support import seed_charged

    pool = PLANS[PlanName.STANDARD].generations_per_month
    grant = {"generations": 10, "reason": "speed test"}

    hourly = api("standard")  # the whole pool spent in this very hour
    seed_charged(
        credits_app, hourly.user_id, count=pool, plan="standard",
        hour=hour_label(credits_app.now()),
    )  # fmt: skip
    r = hourly.client.post(
        "/v1/admin/grants", json={**grant, "user_id": hourly.user_id},
        headers=hourly.admin_headers,
    )  # fmt: skip
    assert r.status_code == 201
    refused = _create(hourly)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "HOURLY_LIMIT_EXCEEDED"
    assert _usage(hourly, database_url)["credits"]["remaining"] == 10

    busy = api("standard")  # the pool spent earlier this month
    seed_charged(credits_app, busy.user_id, count=pool, plan="standard")
    r = busy.client.post(
        "/v1/admin/grants", json={**grant, "user_id": busy.user_id}, headers=busy.admin_headers
    )
    assert r.status_code == 201
    slots = PLANS[PlanName.STANDARD].concurrent_jobs
    assert [_create(busy).status_code for _ in range(slots)] == [202] * slots
    refused = _create(busy)  # jobs are never delivered here: every slot stays held
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "CONCURRENCY_LIMIT"
    assert _usage(busy, database_url)["credits"]["remaining"] == 10 - slots


def test_a_pack_checkout_is_paid_by_the_users_own_customer(
    credits_app: Container, api: Callable[..., Api], fake: FakeStripe,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    user = api("basic")
    with caplog.at_level(logging.INFO, logger="reel.billing.stripe"):
        for _ in range(2):
            r = user.post("/v1/billing/packs/checkout", {"pack": "pack_200"})
            assert r.status_code == 201, r.text
    with credits_app.db.uow() as uow:
        row = uow.users.get(user.user_id)
    assert row is not None
    customer = row.stripe_customer_id
    assert customer
    metadata = {"user_id": user.user_id, "product": "pack", "pack": "pack_200"}
    settings = credits_app.settings
    expected = {
        "customer": customer, "client_reference_id": user.user_id, "metadata": metadata,
        "line_items": [{"price": PRICES["PACK_200"], "quantity": "1"}],
        "success_url": settings.stripe_success_url, "cancel_url": settings.stripe_cancel_url,
        "mode": "payment", "payment_intent_data": {"metadata": metadata},
    }  # fmt: skip
    assert fake.calls("/v1/checkout/sessions")[-2:] == [expected, expected]
    started = [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "pack_checkout_started"
    ]
    assert started == [{"event": "pack_checkout_started", "pack": "pack_200",
                        "customer": customer}] * 2  # fmt: skip


@pytest.mark.parametrize(
    ("charge", "detail"),
    [
        ({"payment_intent": None, "amount": 900, "amount_refunded": 900}, "not a payment"),
        ({"payment_intent": "pi_x", "amount": "900", "amount_refunded": 900}, "not a payment"),
        ({"payment_intent": "pi_x", "amount": 900, "amount_refunded": None}, "not a payment"),
        ({"payment_intent": "pi_x", "amount": 0, "amount_refunded": 0}, "free payment"),
    ],
)
def test_a_refund_that_is_not_of_a_paid_pack_is_ignored(
    credits_app: Container, charge: dict[str, Any], detail: str
) -> None:
    evt = event("charge.refunded", {"id": "ch_x", "object": "charge", **charge})
    payload, headers = signed_delivery(evt, WEBHOOK_SECRET)
    o = credits_app.billing.handle_webhook(payload, headers["Stripe-Signature"])
    assert (o.event_id, o.type, o.result, o.user_id, o.detail) == (
        evt["id"], "charge.refunded", "ignored", None, detail
    )  # fmt: skip


def test_every_answer_to_a_pack_refund(
    credits_app: Container, api: Callable[..., Api], database_url: str
) -> None:
    """The outcome the service returns (the route answers only its result; the user and
    the credit ids are what the caller re-syncs in Redis)."""
    user = api("basic")
    pack = PACKS[PackName.PACK_50]
    units, amount = pack.generations, pack.price_cents

    def outcome(evt: dict[str, Any]) -> tuple[Any, ...]:
        payload, headers = signed_delivery(evt, WEBHOOK_SECRET)
        o = credits_app.billing.handle_webhook(payload, headers["Stripe-Signature"])
        assert (o.event_id, o.type) == (evt["id"], evt["type"])
        return o.result, o.user_id, o.detail, o.credit_ids

    intent = f"pi_{secrets.token_hex(6)}"
    early = event("charge.refunded", _charge_refunded(intent, amount, 1))
    assert outcome(early) == ("applied", None, "refund kept", ())
    paid = event(
        "checkout.session.completed", _pack_session(user.user_id, PackName.PACK_50, intent)
    )
    assert outcome(paid)[:2] == ("applied", user.user_id)
    [(credit_id, _, _, removed)] = _credit_of(database_url, user.user_id)
    assert removed == 1  # the early cent took one unit when the pack was granted
    credit = (str(credit_id),)

    half = event("charge.refunded", _charge_refunded(intent, amount, amount // 2))
    taken = units - units_kept(units, amount // 2, amount) - 1
    assert outcome(half) == ("applied", user.user_id, f"removed {taken} unused", credit)
    assert outcome(half) == ("duplicate", user.user_id, None, credit)
    same = event("charge.refunded", _charge_refunded(intent, amount, amount // 2))
    assert outcome(same) == ("ignored", user.user_id, "removed 0 unused", credit)
