"""What one Stripe webhook writes, field by field, and every early return, against
Postgres: a pack's credit (``_grant_pack`` / ``pack_credit``), a checkout's customer
link and boost, a subscription's row (``_on_subscription``)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.billing.stripe_config import StripeConfig
from shared.billing.stripe_webhooks import HANDLED_EVENTS, StripeWebhooks, WebhookOutcome
from shared.config import load_settings
from shared.db.database import Database
from shared.db.models import SubscriptionStatus
from shared.plans import BOOST_DAYS, PlanName
from tests.support.clock import FixedClock
from tests.support.fake_stripe import checkout_session, event, sign, subscription

SECRET = "whsec_effects"
NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
PRICES = {
    "STRIPE_PRICE_BASIC": "price_b",
    "STRIPE_PRICE_STANDARD": "price_s",
    "STRIPE_PRICE_PRO": "price_p",
    "STRIPE_PRICE_PRO_BOOST": "price_boost",
}


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, max_connections=4)
    yield database
    database.close()


@pytest.fixture
def hooks(db: Database) -> StripeWebhooks:
    settings = {"STRIPE_SECRET_KEY": "sk_test_1", "STRIPE_WEBHOOK_SECRET": SECRET, **PRICES}
    config = StripeConfig.from_settings(load_settings(settings))
    return StripeWebhooks(config, lambda: db, FixedClock(NOW))


def _user() -> str:
    return f"u-{secrets.token_hex(6)}"


def _deliver(hooks: StripeWebhooks, evt: dict[str, Any]) -> WebhookOutcome:
    payload = json.dumps(evt).encode()
    return hooks.handle_webhook(payload, sign(payload, SECRET))


def _pack_session(user_id: str, pack: str | None = "pack_200", **kw: Any) -> dict[str, Any]:
    metadata = {"user_id": user_id, "product": "pack"}
    if pack is not None:
        metadata["pack"] = pack
    return checkout_session(mode="payment", customer=None, metadata=metadata, **kw)


# ---------------------------------------------------------------- packs


def test_a_paid_pack_is_credited_with_its_units_expiry_ids_and_audit_row(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    session = _pack_session(user)
    evt = event("checkout.session.completed", session)
    outcome = _deliver(hooks, evt)
    with db.uow() as uow:
        [credit] = uow.credits.for_owner(user)
        events = uow.credits.events(credit.id)
    until = NOW + timedelta(days=365)
    assert outcome == WebhookOutcome(
        evt["id"],
        "checkout.session.completed",
        "applied",
        user,
        f"pack_200: 200 until {until.isoformat()}",
        (str(credit.id),),
    )
    assert (credit.source, credit.pack, credit.units, credit.removed_units) == (
        "pack", "pack_200", 200, 0,
    )  # fmt: skip
    assert credit.expires_at == until
    assert credit.stripe_checkout_session == session["id"]
    assert credit.stripe_payment_intent == session["payment_intent"]
    assert [(e.action, e.units, e.actor, e.reason) for e in events] == [
        ("purchased", 200, f"stripe:{evt['id']}", None)
    ]


def test_a_second_event_for_the_same_session_adds_nothing(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    session = _pack_session(user, "pack_50")
    first = _deliver(hooks, event("checkout.session.completed", session))
    again = event("checkout.session.async_payment_succeeded", session)
    outcome = _deliver(hooks, again)
    assert outcome == WebhookOutcome(
        again["id"], again["type"], "ignored", user, "pack already granted"
    )
    with db.uow() as uow:
        [credit] = uow.credits.for_owner(user)
    assert first.credit_ids == (str(credit.id),)
    assert credit.units == 50


def test_an_unpaid_pack_waits_then_is_credited_when_paid(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    session = _pack_session(user, "pack_50", payment_status="unpaid")
    evt = event("checkout.session.completed", session)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "applied", user, "pack awaiting payment"
    )
    with db.uow() as uow:
        assert uow.credits.for_owner(user) == []
    paid = event("checkout.session.async_payment_succeeded", {**session, "payment_status": "paid"})
    assert _deliver(hooks, paid).result == "applied"
    # A free session (a 100% coupon) is as good as paid.
    free = _pack_session(user, "pack_50", payment_status="no_payment_required")
    assert _deliver(hooks, event("checkout.session.completed", free)).result == "applied"
    with db.uow() as uow:
        assert [c.units for c in uow.credits.for_owner(user)] == [50, 50]


@pytest.mark.parametrize(
    ("pack", "session_id"),
    [("pack_999", "cs_x"), (None, "cs_y"), ("", "cs_z"), ("pack_50", None)],
)
def test_an_unknown_pack_or_a_session_without_id_is_ignored(
    hooks: StripeWebhooks, db: Database, pack: str | None, session_id: str | None
) -> None:
    user = _user()
    session = _pack_session(user, pack)
    session["id"] = session_id
    evt = event("checkout.session.completed", session)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "ignored", user, "unknown pack"
    )
    with db.uow() as uow:
        assert uow.credits.for_owner(user) == []


def test_a_refund_delivered_before_the_payment_is_applied_at_once(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    session = _pack_session(user, "pack_50")
    intent = session["payment_intent"]
    # A third of 495 cents refunded: 17 of 50 units taken (16.67 rounded up).
    charge = {"id": "ch_1", "object": "charge", "payment_intent": intent,
              "amount": 495, "amount_refunded": 165}  # fmt: skip
    assert _deliver(hooks, event("charge.refunded", charge)).detail == "refund kept"
    evt = event("checkout.session.completed", session)
    outcome = _deliver(hooks, evt)
    with db.uow() as uow:
        [credit] = uow.credits.for_owner(user)
        events = uow.credits.events(credit.id)
    until = NOW + timedelta(days=365)
    assert (outcome.result, outcome.detail) == ("applied", f"pack_50: 33 until {until.isoformat()}")
    assert (credit.units, credit.removed_units, credit.limit) == (50, 17, 33)
    actor = f"stripe:{evt['id']}"
    assert [(e.action, e.units, e.actor, e.reason) for e in events] == [
        ("purchased", 50, actor, None),
        ("refunded", 17, actor, None),
    ]
    # The session's second event finds the credit: the kept refund is not applied again.
    again = event("checkout.session.async_payment_succeeded", session)
    assert _deliver(hooks, again) == WebhookOutcome(
        again["id"], again["type"], "ignored", user, "pack already granted"
    )
    with db.uow() as uow:
        assert uow.credits.get(credit.id) == credit


def test_a_pack_paid_without_a_payment_intent_is_credited_in_full(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    session = _pack_session(user, "pack_50")
    session["payment_intent"] = None
    outcome = _deliver(hooks, event("checkout.session.completed", session))
    with db.uow() as uow:
        [credit] = uow.credits.for_owner(user)
    assert outcome.result == "applied"
    assert (credit.units, credit.limit, credit.stripe_payment_intent) == (50, 50, None)


# ---------------------------------------------------------------- checkouts


def test_a_checkout_for_nobody_we_know_is_ignored(hooks: StripeWebhooks) -> None:
    session = checkout_session(mode="payment", customer="cus_nobody_" + secrets.token_hex(4))
    evt = event("checkout.session.completed", session)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "ignored", None, "unknown customer"
    )


def test_a_checkout_links_the_customer_and_is_once_per_event(
    hooks: StripeWebhooks, db: Database
) -> None:
    user, customer = _user(), f"cus_{secrets.token_hex(6)}"
    session = checkout_session(
        mode="subscription", customer=customer, client_reference_id=user, subscription_id="sub_l"
    )
    evt = event("checkout.session.completed", session)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "applied", user, "customer linked"
    )
    with db.uow() as uow:
        stored = uow.users.get(user)
    assert stored is not None
    assert stored.stripe_customer_id == customer
    assert _deliver(hooks, evt) == WebhookOutcome(evt["id"], evt["type"], "duplicate", user)


def test_a_paid_boost_extends_from_now_and_an_unpaid_one_waits(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    meta = {"user_id": user, "product": "pro_boost"}
    unpaid = checkout_session(mode="payment", customer=None, metadata=meta,
                              payment_status="unpaid")  # fmt: skip
    evt = event("checkout.session.completed", unpaid)
    assert _deliver(hooks, evt).detail == "boost awaiting payment"
    paid = event("checkout.session.async_payment_succeeded", {**unpaid, "payment_status": "paid"})
    outcome = _deliver(hooks, paid)
    until = NOW + timedelta(days=BOOST_DAYS)
    assert outcome == WebhookOutcome(
        paid["id"], paid["type"], "applied", user, f"boost until {until.isoformat()}"
    )


# ---------------------------------------------------------------- subscriptions


def test_a_subscription_event_writes_every_field(hooks: StripeWebhooks, db: Database) -> None:
    user, customer = _user(), f"cus_{secrets.token_hex(6)}"
    end = int(NOW.timestamp()) + 30 * 86400
    sub = subscription(customer=customer, price="price_s", id=f"sub_{secrets.token_hex(4)}",
                       metadata={"user_id": user}, current_period_end=end)  # fmt: skip
    created = int(NOW.timestamp())
    evt = event("customer.subscription.created", sub, created=created)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "applied", user, "standard:active"
    )
    with db.uow() as uow:
        row = uow.subscriptions.get(user)
        linked = uow.users.get(user)
    assert row is not None
    assert linked is not None
    assert (row.plan, row.status, row.stripe_subscription_id) == (
        PlanName.STANDARD, SubscriptionStatus.ACTIVE, sub["id"],
    )  # fmt: skip
    assert row.current_period_end == datetime.fromtimestamp(end, UTC)
    assert row.source_event_created == datetime.fromtimestamp(created, UTC)
    assert linked.stripe_customer_id == customer
    # The same event again changes nothing; an older one is stale; deleted cancels.
    assert _deliver(hooks, evt) == WebhookOutcome(evt["id"], evt["type"], "duplicate", user)
    older = event("customer.subscription.updated", {**sub, "status": "past_due"},
                  created=created - 10)  # fmt: skip
    assert _deliver(hooks, older) == WebhookOutcome(
        older["id"], older["type"], "stale", user, "standard:past_due"
    )
    # Older with the same status: still stale (the newer write stands, not this one).
    same = event("customer.subscription.updated", sub, created=created - 5)
    assert _deliver(hooks, same) == WebhookOutcome(
        same["id"], same["type"], "stale", user, "standard:active"
    )
    gone = event("customer.subscription.deleted", sub, created=created + 10)
    assert _deliver(hooks, gone) == WebhookOutcome(
        gone["id"], gone["type"], "applied", user, "standard:canceled"
    )
    with db.uow() as uow:
        row = uow.subscriptions.get(user)
    assert row is not None
    assert row.status == SubscriptionStatus.CANCELED


def test_a_subscription_event_is_matched_by_customer_or_ignored(
    hooks: StripeWebhooks, db: Database
) -> None:
    user, customer = _user(), f"cus_{secrets.token_hex(6)}"
    link = checkout_session(mode="payment", customer=customer, client_reference_id=user)
    _deliver(hooks, event("checkout.session.completed", link))
    sub = subscription(customer=customer, price="price_b")
    evt = event("customer.subscription.created", sub)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "applied", user, "basic:active"
    )
    # A later checkout naming only the customer is the same user's.
    by_customer = event(
        "checkout.session.completed", checkout_session(mode="payment", customer=customer)
    )
    assert _deliver(hooks, by_customer) == WebhookOutcome(
        by_customer["id"], by_customer["type"], "applied", user, "customer linked"
    )
    stranger = subscription(customer=f"cus_{secrets.token_hex(6)}", price="price_b")
    evt = event("customer.subscription.created", stranger)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "ignored", None, "unknown customer"
    )


def test_a_foreign_price_is_ignored_unless_it_ends_the_row_we_hold(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    sub = subscription(customer=f"cus_{secrets.token_hex(6)}", price="price_p",
                       metadata={"user_id": user}, id=f"sub_{secrets.token_hex(4)}")  # fmt: skip
    created = int(NOW.timestamp())
    _deliver(hooks, event("customer.subscription.created", sub, created=created))
    foreign = dict(sub)
    foreign["items"] = {"data": [{"price": {"id": "price_other"}, "current_period_end": 1}]}
    evt = event("customer.subscription.updated", foreign, created=created + 1)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "ignored", user, "foreign price"
    )
    ended = event("customer.subscription.updated", {**foreign, "status": "canceled"},
                  created=created + 2)  # fmt: skip
    assert _deliver(hooks, ended) == WebhookOutcome(
        ended["id"], ended["type"], "applied", user, "pro:canceled"
    )
    with db.uow() as uow:
        row = uow.subscriptions.get(user)
    assert row is not None
    assert (row.plan, row.status) == (PlanName.PRO, SubscriptionStatus.CANCELED)


def test_an_ended_foreign_price_with_no_row_of_ours_is_ignored(hooks: StripeWebhooks) -> None:
    user = _user()
    sub = subscription(customer=f"cus_{secrets.token_hex(6)}", price="price_other",
                       status="canceled", metadata={"user_id": user})  # fmt: skip
    evt = event("customer.subscription.deleted", sub)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "ignored", user, "foreign price"
    )


def test_the_old_subscription_ending_leaves_the_current_one(
    hooks: StripeWebhooks, db: Database
) -> None:
    user, customer = _user(), f"cus_{secrets.token_hex(6)}"
    created = int(NOW.timestamp())
    current = subscription(customer=customer, price="price_p", metadata={"user_id": user},
                           id=f"sub_{secrets.token_hex(4)}")  # fmt: skip
    _deliver(hooks, event("customer.subscription.created", current, created=created))
    old = subscription(customer=customer, price="price_b", status="past_due",
                       metadata={"user_id": user}, id=f"sub_{secrets.token_hex(4)}")  # fmt: skip
    evt = event("customer.subscription.updated", old, created=created + 5)
    assert _deliver(hooks, evt) == WebhookOutcome(
        evt["id"], evt["type"], "ignored", user, "another subscription is current"
    )
    with db.uow() as uow:
        row = uow.subscriptions.get(user)
    assert row is not None
    assert (row.plan, row.status, row.stripe_subscription_id) == (
        PlanName.PRO, SubscriptionStatus.ACTIVE, current["id"],
    )  # fmt: skip
    # The event id is remembered: its redelivery is a duplicate.
    assert _deliver(hooks, evt).result == "duplicate"


def test_events_naming_a_deleted_accounts_customer_or_subscription_change_nothing(
    hooks: StripeWebhooks, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    user, customer = _user(), f"cus_{secrets.token_hex(6)}"
    created = int(NOW.timestamp())
    sub = subscription(customer=customer, price="price_s", metadata={"user_id": user},
                       id=f"sub_{secrets.token_hex(4)}")  # fmt: skip
    _deliver(hooks, event("customer.subscription.created", sub, created=created))
    with db.uow() as uow:
        assert uow.stripe_tombstones.bury_user(user, NOW) == 2
        uow.commit()
        before = uow.subscriptions.get(user)
    new_customer, new_sub = f"cus_{secrets.token_hex(6)}", f"sub_{secrets.token_hex(4)}"
    by_subscription = event(
        "customer.subscription.updated",
        {**sub, "customer": new_customer, "status": "canceled"},
        created=created + 1,
    )
    by_customer = event(
        "customer.subscription.updated", {**sub, "id": new_sub, "status": "canceled"},
        created=created + 2,
    )  # fmt: skip
    by_checkout = event(
        "checkout.session.completed",
        checkout_session(mode="subscription", customer=new_customer, client_reference_id=user,
                         subscription_id=sub["id"]),
    )  # fmt: skip
    by_checkout_customer = event(
        "checkout.session.completed",
        checkout_session(mode="payment", customer=customer, client_reference_id=user),
    )
    for evt in (by_subscription, by_customer, by_checkout, by_checkout_customer):
        with caplog.at_level(logging.INFO, logger="reel.billing.stripe"):
            outcome = _deliver(hooks, evt)
        assert outcome == WebhookOutcome(evt["id"], evt["type"], "ignored", None, "deleted account")
        [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
        fields = getattr(warning, "fields", {})
        assert (fields["event"], fields["event_id"], fields["event_type"]) == (
            "stripe_event_for_deleted_account", evt["id"], evt["type"],
        )  # fmt: skip
        assert customer in fields["stripe_ids"] or sub["id"] in fields["stripe_ids"]
        caplog.clear()
    with db.uow() as uow:
        assert uow.subscriptions.get(user) == before
        user_row = uow.users.get(user)
    assert user_row is not None
    assert user_row.stripe_customer_id == customer


def test_a_one_cent_payment_refunded_in_full_takes_its_units_back(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = _user()
    session = _pack_session(user, "pack_50")
    assert _deliver(hooks, event("checkout.session.completed", session)).result == "applied"
    charge = {"id": "ch_1c", "object": "charge", "payment_intent": session["payment_intent"],
              "amount": 1, "amount_refunded": 1}  # fmt: skip
    outcome = _deliver(hooks, event("charge.refunded", charge))
    assert (outcome.result, outcome.detail) == ("applied", "removed 50 unused")
    with db.uow() as uow:
        [credit] = uow.credits.for_owner(user)
    assert credit.limit == 0


def test_a_refund_of_an_unknown_payment_delivered_twice_is_a_duplicate_of_nobody(
    hooks: StripeWebhooks,
) -> None:
    charge = {"id": "ch_u", "object": "charge", "payment_intent": f"pi_{secrets.token_hex(6)}",
              "amount": 495, "amount_refunded": 495}  # fmt: skip
    evt = event("charge.refunded", charge)
    assert _deliver(hooks, evt).detail == "refund kept"
    assert _deliver(hooks, evt) == WebhookOutcome(evt["id"], evt["type"], "duplicate", None)


def _linked(db: Database, user: str) -> str | None:
    with db.uow() as uow:
        row = uow.users.get(user)
    return row.stripe_customer_id if row else None


def test_a_checkout_never_moves_a_linked_customer_nor_takes_anothers(
    hooks: StripeWebhooks, db: Database
) -> None:
    """The first customer stays (portal and lookups keep pointing at it), and a customer
    already linked to another user is not linked a second time."""
    user, first, second = _user(), f"cus_{secrets.token_hex(6)}", f"cus_{secrets.token_hex(6)}"
    for customer in (first, second):
        session = checkout_session(mode="subscription", customer=customer,
                                   client_reference_id=user, subscription_id="sub_m")  # fmt: skip
        assert _deliver(hooks, event("checkout.session.completed", session)).result == "applied"
    assert _linked(db, user) == first
    other = _user()
    session = checkout_session(mode="subscription", customer=first, client_reference_id=other,
                               subscription_id="sub_n")  # fmt: skip
    _deliver(hooks, event("checkout.session.completed", session))
    assert (_linked(db, other), _linked(db, user)) == (None, first)


def test_a_user_id_of_the_longest_length_the_schema_allows_is_taken(
    hooks: StripeWebhooks, db: Database
) -> None:
    user = "u" + secrets.token_hex(64)[:127]  # 128 characters: users.id's CHECK allows it
    assert len(user) == 128
    session = _pack_session(user, "pack_50")
    outcome = _deliver(hooks, event("checkout.session.completed", session))
    assert (outcome.result, outcome.user_id) == ("applied", user)
    longer = _pack_session(user + "x", "pack_50")
    assert _deliver(hooks, event("checkout.session.completed", longer)).user_id is None


def test_every_event_is_answered_and_logged_once_with_its_outcome(
    hooks: StripeWebhooks, caplog: pytest.LogCaptureFixture
) -> None:
    other = event("customer.created", {"id": f"cus_{secrets.token_hex(4)}", "object": "customer"})
    user = _user()
    pack = event("checkout.session.completed", _pack_session(user, "pack_50"))
    with caplog.at_level(logging.INFO, logger="reel.billing.stripe"):
        ignored, applied = _deliver(hooks, other), _deliver(hooks, pack)
    assert ignored == WebhookOutcome(other["id"], other["type"], "ignored", detail="unhandled type")
    lines = [
        getattr(r, "fields", {})
        for r in caplog.records
        if getattr(r, "fields", {}).get("event") == "stripe_event"
    ]
    assert lines == [
        {"event": "stripe_event", "event_id": other["id"], "event_type": "customer.created",
         "result": "ignored", "detail": "unhandled type", "user_id": None},
        {"event": "stripe_event", "event_id": pack["id"], "event_type": pack["type"],
         "result": "applied", "detail": applied.detail, "user_id": user},
    ]  # fmt: skip


@pytest.mark.parametrize("event_type", sorted(HANDLED_EVENTS))
def test_each_handled_event_type_reaches_its_handler(
    hooks: StripeWebhooks, event_type: str
) -> None:
    """HANDLED_EVENTS (what docs/deploy.md subscribes the endpoint to) and the dispatch
    agree: none of them is answered "unhandled type"."""
    evt = event(event_type, {"id": f"obj_{secrets.token_hex(4)}", "object": "x"})
    assert _deliver(hooks, evt).detail != "unhandled type"
