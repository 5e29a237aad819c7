"""Payments end to end (SPEC §8): the real local server, the official SDK talking to a
local Stripe (``FakeStripe``), webhooks signed exactly as Stripe signs them, and the
effect read back through ``/v1/usage`` and ``/v1/create``."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devtools.compose import dev_container
from shared.bootstrap import Container
from shared.config import load_settings
from shared.db.accounts import PgUsers
from tests.support.e2e import Api
from tests.support.fake_stripe import (
    FakeStripe,
    checkout_session,
    event,
    invoice,
    signed_delivery,
    subscription,
)

API_KEY = "sk_test_reel_e2e"
WEBHOOK_SECRET = "whsec_reel_e2e_" + secrets.token_hex(8)
SUCCESS_URL = "https://app.example.com/billing/success"
CANCEL_URL = "https://app.example.com/billing/cancel"
PRODUCTS = ("basic", "standard", "pro", "pro_boost")


def _prices() -> dict[str, str]:
    run = secrets.token_hex(3)  # a fresh id per run: nothing can match by accident
    return {p: f"price_{p}_{run}" for p in PRODUCTS}


PRICES = _prices()


def _stripe_env(base_env: dict[str, str], fake: FakeStripe, **extra: str) -> dict[str, str]:
    return {
        **base_env,
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": fake.url,
        "STRIPE_SUCCESS_URL": SUCCESS_URL,
        "STRIPE_CANCEL_URL": CANCEL_URL,
        **{f"STRIPE_PRICE_{p.upper()}": price for p, price in PRICES.items()},
        **extra,
    }


def _close(c: Container) -> None:
    db = c.built("db")
    if db is not None:
        db.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY) as f:
        yield f


@pytest.fixture(scope="module")
def stripe_container(base_env: dict[str, str], fake: FakeStripe) -> Iterator[Container]:
    c = dev_container(load_settings(_stripe_env(base_env, fake)))
    yield c
    _close(c)


@pytest.fixture
def billing(
    use_container: Callable[[Container], Container], stripe_container: Container
) -> Container:
    return use_container(stripe_container)


@pytest.fixture
def deliver(client: httpx.Client) -> Callable[..., httpx.Response]:
    def send(
        evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> httpx.Response:
        payload, headers = signed_delivery(evt, secret, timestamp=timestamp)
        return client.post("/webhooks/stripe", content=payload, headers=headers)

    return send


def _customer_of(c: Container, user_id: str) -> str | None:
    with c.db.uow() as uow:
        user = uow.users.get(user_id)
    return user.stripe_customer_id if user else None


def _checkout(a: Api, product: str) -> str:
    r = a.post("/v1/billing/checkout", {"product": product})
    assert r.status_code == 201, r.text
    url: str = r.json()["url"]
    return url


def _usage(a: Api) -> dict[str, Any]:
    r = a.get("/v1/usage")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _sub_event(
    type: str, a: Api, customer: str, product: str, *, created: int | None = None, **kw: Any
) -> dict[str, Any]:
    sub = subscription(customer=customer, price=PRICES[product], **kw)
    return event(type, sub, created=created)


def _boost_event(a: Api, customer: str | None) -> dict[str, Any]:
    session = checkout_session(
        mode="payment",
        customer=customer,
        client_reference_id=a.user_id,
        metadata={"user_id": a.user_id, "product": "pro_boost"},
    )
    return event("checkout.session.completed", session)


def _subscribed(
    a: Api,
    c: Container,
    deliver: Callable[..., httpx.Response],
    product: str,
    sub_id: str | None = None,
) -> str:
    """Checkout, then Stripe's subscription event: the user holds ``product``."""
    _checkout(a, product)
    customer = _customer_of(c, a.user_id)
    assert customer is not None
    metadata = {"user_id": a.user_id, "product": product}
    r = deliver(_sub_event("customer.subscription.created", a, customer, product,
                           metadata=metadata, id=sub_id or f"sub_{a.user_id}"))  # fmt: skip
    assert r.status_code == 200, r.text
    return customer


def _create(a: Api) -> httpx.Response:
    return a.post("/v1/create", {"brief": "3 reasons to drink water", "platform": "tiktok"})


# ---------------------------------------------------------------- checkout and portal


@pytest.mark.parametrize("product", ["basic", "standard", "pro"])
def test_plan_checkout_is_a_subscription_for_the_configured_price(
    billing: Container, fake: FakeStripe, api: Callable[..., Api], product: str
) -> None:
    a = api()
    url = _checkout(a, product)
    [params] = [
        p for p in fake.calls("/v1/checkout/sessions") if p["client_reference_id"] == a.user_id
    ]
    customer = _customer_of(billing, a.user_id)
    assert url.startswith("https://checkout.stripe.com/")
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": PRICES[product], "quantity": "1"}]
    assert params["customer"] == customer
    assert params["metadata"] == {"user_id": a.user_id, "product": product}
    assert params["subscription_data"] == {"metadata": {"user_id": a.user_id, "product": product}}
    assert params["success_url"] == SUCCESS_URL
    assert params["cancel_url"] == CANCEL_URL


def test_boost_checkout_is_a_one_time_payment(
    billing: Container, fake: FakeStripe, api: Callable[..., Api]
) -> None:
    a = api("basic")
    _checkout(a, "pro_boost")
    [params] = [
        p for p in fake.calls("/v1/checkout/sessions") if p["client_reference_id"] == a.user_id
    ]
    assert params["mode"] == "payment"
    assert params["line_items"] == [{"price": PRICES["pro_boost"], "quantity": "1"}]
    assert params["customer"] == _customer_of(billing, a.user_id)
    assert params["metadata"] == {"user_id": a.user_id, "product": "pro_boost"}
    assert params["payment_intent_data"] == {
        "metadata": {"user_id": a.user_id, "product": "pro_boost"}
    }
    assert "subscription_data" not in params


def test_checkout_prices_come_only_from_configured_price_ids(
    base_env: dict[str, str],
    fake: FakeStripe,
    use_container: Callable[[Container], Container],
    api: Callable[..., Api],
) -> None:
    """Another deployment's price ids flow through unchanged; no amount is ever sent."""
    other = {p: f"price_other_{p}_{secrets.token_hex(4)}" for p in PRODUCTS}
    env = _stripe_env(base_env, fake, **{f"STRIPE_PRICE_{p.upper()}": v for p, v in other.items()})
    c = use_container(dev_container(load_settings(env)))
    try:
        for product in PRODUCTS:
            a = api()
            _checkout(a, product)
            [params] = [
                p
                for p in fake.calls("/v1/checkout/sessions")
                if p["client_reference_id"] == a.user_id
            ]
            assert [item["price"] for item in params["line_items"]] == [other[product]]
            flat = repr(params)
            assert "price_data" not in flat
            assert "amount" not in flat
    finally:
        _close(c)


def test_customer_is_created_once_across_two_checkouts(
    billing: Container, fake: FakeStripe, api: Callable[..., Api]
) -> None:
    a = api()
    _checkout(a, "basic")
    _checkout(a, "pro_boost")
    mine = [p for p in fake.calls("/v1/customers") if p["metadata"]["user_id"] == a.user_id]
    sessions = [
        p for p in fake.calls("/v1/checkout/sessions") if p["client_reference_id"] == a.user_id
    ]
    assert len(mine) == 1
    assert {s["customer"] for s in sessions} == {_customer_of(billing, a.user_id)}


def test_concurrent_first_checkouts_keep_one_customer(
    billing: Container, fake: FakeStripe, api: Callable[..., Api]
) -> None:
    a = api()
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def go() -> None:
        barrier.wait()
        statuses.append(a.post("/v1/billing/checkout", {"product": "pro_boost"}).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [201] * 4
    stored = _customer_of(billing, a.user_id)
    created = {c for c, obj in fake.customers.items() if obj["metadata"]["user_id"] == a.user_id}
    sessions = [
        p for p in fake.calls("/v1/checkout/sessions") if p["client_reference_id"] == a.user_id
    ]
    assert created == {stored}
    assert {s["customer"] for s in sessions} == {stored}


def test_a_second_plan_subscription_is_refused(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    _subscribed(a, billing, deliver, "basic")
    r = a.post("/v1/billing/checkout", {"product": "pro"})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "SUBSCRIPTION_EXISTS"
    assert a.post("/v1/billing/checkout", {"product": "pro_boost"}).status_code == 201


def test_portal_opens_for_the_users_customer_and_404_without_one(
    billing: Container, fake: FakeStripe, api: Callable[..., Api]
) -> None:
    a = api()
    r = a.post("/v1/billing/portal", {})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "NOT_FOUND"

    _checkout(a, "basic")
    r = a.post("/v1/billing/portal", {})
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith("https://billing.stripe.com/")
    params = fake.calls("/v1/billing_portal/sessions")[-1]
    assert params == {"customer": _customer_of(billing, a.user_id), "return_url": SUCCESS_URL}


def test_checkout_validates_the_product(billing: Container, api: Callable[..., Api]) -> None:
    r = api().post("/v1/billing/checkout", {"product": "platinum"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "VALIDATION_FAILED"


def test_stripe_errors_become_503_without_details_leaking(
    billing: Container, fake: FakeStripe, api: Callable[..., Api]
) -> None:
    a = api()
    fake.fail_next(500, "api_error", "internal kaboom at stripe")
    r = a.post("/v1/billing/checkout", {"product": "basic"})
    assert r.status_code == 503, r.text
    body = r.json()["error"]
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert "kaboom" not in r.text
    assert "Traceback" not in r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert _customer_of(billing, a.user_id) is None  # nothing half-stored
    assert _checkout(a, "basic")  # the retry succeeds


def test_a_rejected_api_key_is_503(
    base_env: dict[str, str],
    fake: FakeStripe,
    use_container: Callable[[Container], Container],
    api: Callable[..., Api],
) -> None:
    c = use_container(
        dev_container(load_settings(_stripe_env(base_env, fake, STRIPE_SECRET_KEY="sk_test_wrong")))
    )
    try:
        r = api().post("/v1/billing/checkout", {"product": "basic"})
        assert r.status_code == 503, r.text
        assert "misconfigured" in r.json()["error"]["message"]
    finally:
        _close(c)


def test_billing_not_configured_is_503(
    base_env: dict[str, str],
    fake: FakeStripe,
    use_container: Callable[[Container], Container],
    api: Callable[..., Api],
    client: httpx.Client,
) -> None:
    a = api()  # the default test container has no STRIPE_* at all
    for path, body in (("/v1/billing/checkout", {"product": "basic"}), ("/v1/billing/portal", {})):
        r = a.post(path, body)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "STRIPE_SECRET_KEY" in r.json()["error"]["message"]
        assert "Retry-After" in r.headers
    payload, headers = signed_delivery(event("ping", {}), WEBHOOK_SECRET)
    r = client.post("/webhooks/stripe", content=payload, headers=headers)
    assert r.status_code == 503
    assert "STRIPE_WEBHOOK_SECRET" in r.json()["error"]["message"]

    c = use_container(
        dev_container(load_settings(_stripe_env(base_env, fake, STRIPE_PRICE_PRO_BOOST="")))
    )
    try:
        r = a.post("/v1/billing/checkout", {"product": "pro_boost"})
        assert r.status_code == 503
        assert "STRIPE_PRICE_PRO_BOOST" in r.json()["error"]["message"]
        assert a.post("/v1/billing/checkout", {"product": "pro"}).status_code == 201
    finally:
        _close(c)


# ---------------------------------------------------------------- webhook


def test_subscription_event_changes_the_plan_and_usage_shows_it_at_once(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    assert _usage(a)["plan"] is None  # and now the no-plan answer is cached in Redis
    assert _create(a).status_code == 402
    customer = _subscribed(a, billing, deliver, "standard")
    usage = _usage(a)
    assert (usage["plan"], usage["effective_plan"]) == ("standard", "standard")
    assert _create(a).status_code == 202

    # Resolved by customer alone (no metadata): an upgrade made in the portal.
    r = deliver(
        _sub_event("customer.subscription.updated", a, customer, "pro", id=f"sub_{a.user_id}")
    )
    assert r.json() == {"received": True, "result": "applied"}
    assert _usage(a)["plan"] == "pro"


def test_bad_signature_or_stale_timestamp_is_400_and_changes_nothing(
    billing: Container,
    client: httpx.Client,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
) -> None:
    a = api()
    _checkout(a, "basic")
    customer = _customer_of(billing, a.user_id)
    evt = _sub_event("customer.subscription.created", a, customer or "", "pro",
                     metadata={"user_id": a.user_id})  # fmt: skip
    payload, headers = signed_delivery(evt, WEBHOOK_SECRET)
    tampered = payload.replace(PRICES["pro"].encode(), PRICES["basic"].encode())
    assert tampered != payload
    attempts = [
        deliver(evt, secret="whsec_not_ours"),
        deliver(evt, timestamp=int(time.time()) - 301),
        client.post("/webhooks/stripe", content=payload,
                    headers={**headers, "Stripe-Signature": ""}),
        client.post("/webhooks/stripe", content=tampered,
                    headers=headers),
        client.post("/webhooks/stripe", content=payload,
                    headers={"Content-Type": "application/json"}),
        client.post("/webhooks/stripe", content=payload,
                    headers={**headers, "Stripe-Signature": "t=abc,v0=zz"}),
    ]  # fmt: skip
    for r in attempts:
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert _usage(a)["plan"] is None
    # The refused deliveries recorded nothing: the genuine one still applies.
    assert deliver(evt).json()["result"] == "applied"
    assert _usage(a)["plan"] == "pro"


def test_one_event_delivered_three_times_concurrently_applies_once(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    _checkout(a, "pro_boost")
    evt = _boost_event(a, _customer_of(billing, a.user_id))
    barrier = threading.Barrier(3)
    results: list[str] = []

    def go() -> None:
        barrier.wait()
        r = deliver(evt)
        assert r.status_code == 200, r.text
        results.append(r.json()["result"])

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["applied", "duplicate", "duplicate"]
    expires = datetime.fromisoformat(_usage(a)["boost_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert deliver(evt).json()["result"] == "duplicate"  # and later redeliveries too


def test_newer_subscription_state_wins_over_an_older_late_event(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    _checkout(a, "basic")
    customer = _customer_of(billing, a.user_id) or ""
    t0 = int(time.time()) - 60
    meta = {"user_id": a.user_id}
    sub_id = f"sub_{a.user_id}"
    updated = _sub_event("customer.subscription.updated", a, customer, "pro", created=t0 + 10,
                         metadata=meta, id=sub_id)  # fmt: skip
    created = _sub_event("customer.subscription.created", a, customer, "basic", created=t0,
                         metadata=meta, id=sub_id)  # fmt: skip
    assert deliver(updated).json()["result"] == "applied"
    assert deliver(created).json()["result"] == "stale"
    assert _usage(a)["plan"] == "pro"


def test_cancellation_makes_the_next_create_402(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    customer = _subscribed(a, billing, deliver, "basic")
    assert _create(a).status_code == 202
    deleted = _sub_event("customer.subscription.deleted", a, customer, "basic",
                         status="canceled", id=f"sub_{a.user_id}")  # fmt: skip
    assert deliver(deleted).json()["result"] == "applied"
    r = _create(a)
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "SUBSCRIPTION_REQUIRED"
    assert _usage(a)["plan"] is None


def test_an_old_subscription_ending_does_not_cancel_the_current_one(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    customer = _subscribed(a, billing, deliver, "standard")
    old = _sub_event("customer.subscription.deleted", a, customer, "basic",
                     status="canceled", id="sub_replaced_" + a.user_id)  # fmt: skip
    assert deliver(old).json()["result"] == "ignored"
    assert _usage(a)["plan"] == "standard"


def test_failed_payment_marks_past_due_and_removes_the_plan(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    customer = _subscribed(a, billing, deliver, "pro")
    assert _usage(a)["plan"] == "pro"
    failed = event(
        "invoice.payment_failed", invoice(customer=customer, subscription_id=f"sub_{a.user_id}")
    )
    assert deliver(failed).json()["result"] == "applied"
    assert _usage(a)["plan"] is None
    assert _create(a).status_code == 402
    with billing.db.uow() as uow:
        sub = uow.subscriptions.get(a.user_id)
    assert sub is not None
    assert sub.status == "past_due"


def test_boost_bought_twice_lasts_sixty_days(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api("basic")
    _checkout(a, "pro_boost")
    customer = _customer_of(billing, a.user_id)
    for _ in range(2):
        assert deliver(_boost_event(a, customer)).json()["result"] == "applied"
    usage = _usage(a)
    assert (usage["plan"], usage["effective_plan"]) == ("basic", "pro")
    expires = datetime.fromisoformat(usage["boost_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=60))) < timedelta(minutes=5)


def test_unpaid_boost_session_extends_nothing_until_paid(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    session = checkout_session(
        mode="payment",
        customer=None,
        client_reference_id=a.user_id,
        metadata={"user_id": a.user_id, "product": "pro_boost"},
        payment_status="unpaid",
    )
    assert deliver(event("checkout.session.completed", session)).status_code == 200
    assert _usage(a)["boost_expires_at"] is None
    paid = {**session, "payment_status": "paid"}
    deliver(event("checkout.session.async_payment_succeeded", paid))
    assert _usage(a)["effective_plan"] == "pro"


def test_subscription_checkout_completion_links_the_customer(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    customer = f"cus_dashboard_{secrets.token_hex(4)}"
    session = checkout_session(mode="subscription", customer=customer,
                               client_reference_id=a.user_id, subscription_id="sub_x")  # fmt: skip
    assert deliver(event("checkout.session.completed", session)).json()["result"] == "applied"
    assert _customer_of(billing, a.user_id) == customer
    # Later events carrying only the customer now reach this user.
    r = deliver(_sub_event("customer.subscription.created", a, customer, "basic"))
    assert r.json()["result"] == "applied"
    assert _usage(a)["plan"] == "basic"


def test_unknown_event_types_and_unknown_customers_are_200_and_ignored(
    billing: Container, deliver: Callable[..., httpx.Response]
) -> None:
    r = deliver(event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id"}))
    assert r.status_code == 200
    assert r.json() == {"received": True, "result": "ignored"}
    stranger = subscription(customer="cus_not_ours", price=PRICES["pro"])
    r = deliver(event("customer.subscription.created", stranger))
    assert r.json() == {"received": True, "result": "ignored"}


def test_a_signed_but_malformed_event_is_400(billing: Container, client: httpx.Client) -> None:
    payload, headers = signed_delivery({"id": "evt_x", "object": "event"}, WEBHOOK_SECRET)
    r = client.post("/webhooks/stripe", content=payload, headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "INVALID_EVENT"


# ---------------------------------------------------------------- after DELETE /v1/me


def _deleted_subscriber(
    a: Api, c: Container, fake: FakeStripe, deliver: Callable[..., httpx.Response]
) -> str:
    """A Pro subscriber (known to Stripe) who then deletes the account; their customer."""
    customer = _subscribed(a, c, deliver, "pro")
    fake.add_subscription(f"sub_{a.user_id}", customer)
    r = a.client.delete("/v1/me", headers=a.headers)
    assert r.status_code == 202, r.text
    assert fake.subscription_status(f"sub_{a.user_id}") == "canceled"
    _assert_no_account(c, a.user_id)
    return customer


def _assert_no_account(c: Container, user_id: str) -> None:
    with c.db.uow() as uow:
        assert uow.users.get(user_id) is None
        assert uow.subscriptions.get(user_id) is None
        assert uow.boosts.get_expiry(user_id) is None


def test_a_late_active_event_after_account_deletion_grants_nothing(
    billing: Container,
    fake: FakeStripe,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
) -> None:
    a = api()
    customer = _deleted_subscriber(a, billing, fake, deliver)
    # Stripe redelivers an older "active" state, carrying metadata.user_id, out of order.
    late = _sub_event("customer.subscription.created", a, customer, "pro",
                      created=int(time.time()) - 120, metadata={"user_id": a.user_id},
                      id=f"sub_{a.user_id}")  # fmt: skip
    r = deliver(late)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": True, "result": "ignored"}
    _assert_no_account(billing, a.user_id)  # not even an empty user row
    assert _usage(a)["plan"] is None
    assert _create(a).status_code == 402


def test_later_events_for_a_deleted_accounts_stripe_ids_change_nothing(
    billing: Container,
    fake: FakeStripe,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
) -> None:
    a = api()
    customer = _deleted_subscriber(a, billing, fake, deliver)
    meta = {"user_id": a.user_id}
    sub_id = f"sub_{a.user_id}"
    newer = int(time.time()) + 5
    late = [
        # A newer state of the deleted subscription (with and without metadata).
        _sub_event("customer.subscription.updated", a, customer, "pro", created=newer,
                   metadata=meta, id=sub_id),
        _sub_event("customer.subscription.updated", a, customer, "basic", created=newer,
                   id=sub_id),
        # The cancellation our own deletion caused, and a failed invoice.
        _sub_event("customer.subscription.deleted", a, customer, "pro", status="canceled",
                   created=newer, metadata=meta, id=sub_id),
        event("invoice.payment_failed", invoice(customer=customer, subscription_id=sub_id)),
        # A boost paid in a checkout opened before the deletion.
        _boost_event(a, customer),
    ]  # fmt: skip
    for evt in late:
        r = deliver(evt)
        assert r.status_code == 200, r.text
        assert r.json() == {"received": True, "result": "ignored"}, evt["type"]
    _assert_no_account(billing, a.user_id)
    usage = _usage(a)
    assert (usage["plan"], usage["effective_plan"], usage["boost_expires_at"]) == (None, None, None)


def test_a_fresh_purchase_after_account_deletion_works_under_a_new_customer(
    billing: Container,
    fake: FakeStripe,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
) -> None:
    a = api()
    old_customer = _deleted_subscriber(a, billing, fake, deliver)
    assert _usage(a)["plan"] is None  # the same sub is a new user now
    new_customer = _subscribed(a, billing, deliver, "standard", f"sub_new_{a.user_id}")
    assert new_customer != old_customer
    assert fake.customers[new_customer]["metadata"] == {"user_id": a.user_id}
    usage = _usage(a)
    assert (usage["plan"], usage["effective_plan"]) == ("standard", "standard")
    assert _create(a).status_code == 202
    # The deleted account's ids stay dead, and cannot touch the new subscription.
    stale = _sub_event("customer.subscription.deleted", a, old_customer, "pro",
                       status="canceled", metadata={"user_id": a.user_id},
                       id=f"sub_old_{a.user_id}")  # fmt: skip
    assert deliver(stale).json()["result"] == "ignored"
    assert _usage(a)["plan"] == "standard"


def test_a_deletion_committing_while_an_event_is_applied_leaves_nothing(
    billing: Container,
    fake: FakeStripe,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = api()
    customer = _subscribed(a, billing, deliver, "basic")
    fake.add_subscription(f"sub_{a.user_id}", customer)
    touch = PgUsers.touch
    deleted: list[int] = []

    def touch_then_delete(self: PgUsers, user_id: str) -> None:
        # The webhook has resolved the user; the account deletion commits right now.
        touch(self, user_id)
        if user_id == a.user_id and not deleted:
            t = threading.Thread(
                target=lambda: deleted.append(
                    a.client.delete("/v1/me", headers=a.headers).status_code
                )
            )
            t.start()
            t.join(30)

    monkeypatch.setattr(PgUsers, "touch", touch_then_delete)
    upgrade = _sub_event("customer.subscription.updated", a, customer, "pro",
                         metadata={"user_id": a.user_id}, id=f"sub_{a.user_id}")  # fmt: skip
    r = deliver(upgrade)
    assert deleted == [202]
    assert r.status_code == 200, r.text
    assert r.json() == {"received": True, "result": "ignored"}
    _assert_no_account(billing, a.user_id)


# ---------------------------------------------------------------- a failed payment, every answer


def _outcome(c: Container, evt: dict[str, Any]) -> tuple[Any, ...]:
    """The webhook's outcome as the service returns it (the route answers only its
    result; the rest is logged and names the user whose cached plan is invalidated)."""
    payload, headers = signed_delivery(evt, WEBHOOK_SECRET)
    o = c.billing.handle_webhook(payload, headers["Stripe-Signature"])
    return o.event_id, o.type, o.result, o.user_id, o.detail


def test_every_answer_to_a_failed_payment(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    customer = _subscribed(a, billing, deliver, "pro")
    sub_id = f"sub_{a.user_id}"
    t = "invoice.payment_failed"

    stranger = event(t, invoice(customer="cus_not_ours", subscription_id=sub_id))
    assert _outcome(billing, stranger) == (stranger["id"], t, "ignored", None, "unknown customer")
    other = event(t, invoice(customer=customer, subscription_id="sub_an_older_one"))
    assert _outcome(billing, other) == (
        other["id"], t, "ignored", a.user_id, "not the active subscription"
    )  # fmt: skip
    older = event(t, invoice(customer=customer, subscription_id=sub_id),
                  created=int(time.time()) - 3600)  # fmt: skip
    assert _outcome(billing, older) == (older["id"], t, "stale", a.user_id, "past_due")
    assert _usage(a)["plan"] == "pro"

    with billing.db.uow() as uow:
        before = uow.subscriptions.get(a.user_id)
    assert before is not None
    assert before.current_period_end is not None
    failed = event(t, invoice(customer=customer, subscription_id=sub_id))
    assert _outcome(billing, failed) == (failed["id"], t, "applied", a.user_id, "past_due")
    assert _outcome(billing, failed) == (failed["id"], t, "duplicate", a.user_id, None)
    with billing.db.uow() as uow:
        sub = uow.subscriptions.get(a.user_id)
    assert sub is not None
    assert (sub.status, sub.stripe_subscription_id, sub.plan) == ("past_due", sub_id, "pro")
    assert sub.current_period_end == before.current_period_end  # the period is kept
    again = event(t, invoice(customer=customer, subscription_id=sub_id))
    assert _outcome(billing, again) == (
        again["id"], t, "ignored", a.user_id, "not the active subscription"
    )  # fmt: skip


def test_a_failed_payment_finds_its_user_by_the_invoice_metadata(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    _subscribed(a, billing, deliver, "pro")
    sub_id = f"sub_{a.user_id}"
    # A customer we never linked, but the invoice says whose it is.
    bill = {**invoice(customer="cus_unlinked", subscription_id=sub_id),
            "metadata": {"user_id": a.user_id}}  # fmt: skip
    failed = event("invoice.payment_failed", bill)
    assert _outcome(billing, failed)[2:] == ("applied", a.user_id, "past_due")


def test_a_failed_payment_naming_a_deleted_accounts_customer_is_ignored_as_deleted(
    billing: Container,
    fake: FakeStripe,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
) -> None:
    a = api()
    customer = _deleted_subscriber(a, billing, fake, deliver)
    # Named by its customer, by its subscription, or by both.
    for cus, sub_id in ((customer, f"sub_{a.user_id}"), (customer, "sub_never_seen"),
                        ("cus_never_seen", f"sub_{a.user_id}")):  # fmt: skip
        failed = event("invoice.payment_failed", invoice(customer=cus, subscription_id=sub_id))
        assert _outcome(billing, failed) == (
            failed["id"], "invoice.payment_failed", "ignored", None, "deleted account"
        )  # fmt: skip
    _assert_no_account(billing, a.user_id)


def test_the_portal_without_a_billing_account_says_what_to_do(
    billing: Container, api: Callable[..., Api]
) -> None:
    r = api().post("/v1/billing/portal", {})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["message"] == (
        "No billing account yet: buy a plan or the Pro Boost first."
    )


def test_a_failed_payment_of_a_customer_without_a_subscription_is_ignored(
    billing: Container, api: Callable[..., Api]
) -> None:
    a = api()
    _checkout(a, "pro_boost")  # a customer, never a subscription
    customer = _customer_of(billing, a.user_id)
    assert customer is not None
    failed = event("invoice.payment_failed", invoice(customer=customer, subscription_id="sub_x"))
    assert _outcome(billing, failed)[2:] == ("ignored", a.user_id, "not the active subscription")
    with billing.db.uow() as uow:
        assert uow.subscriptions.get(a.user_id) is None


def test_cancel_for_deletion_cancels_only_a_running_stripe_subscription(
    billing: Container,
    fake: FakeStripe,
    deliver: Callable[..., httpx.Response],
    api: Callable[..., Api],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = api()
    assert billing.billing.cancel_for_deletion(a.user_id) is False  # no subscription
    customer = _subscribed(a, billing, deliver, "pro")
    sub_id = f"sub_{a.user_id}"
    fake.add_subscription(sub_id, customer)
    with caplog.at_level(logging.INFO, logger="reel.billing.stripe"):
        assert billing.billing.cancel_for_deletion(a.user_id) is True
    assert fake.subscription_status(sub_id) == "canceled"
    logged = [r.fields for r in caplog.records if r.getMessage() == "stripe_subscription_cancelled"]  # type: ignore[attr-defined]
    assert logged == [
        {"event": "stripe_subscription_cancelled", "user_id": a.user_id, "found": True}
    ]

    ended = _sub_event("customer.subscription.deleted", a, customer, "pro", status="canceled",
                       id=sub_id, created=int(time.time()) + 5)  # fmt: skip
    assert deliver(ended).status_code == 200
    calls = len(fake.requests)
    assert billing.billing.cancel_for_deletion(a.user_id) is False  # already canceled
    assert len(fake.requests) == calls  # and Stripe was not asked


def test_every_answer_to_a_subscription_event(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    customer = _subscribed(a, billing, deliver, "pro")
    sub_id = f"sub_{a.user_id}"
    now = int(time.time())
    up = "customer.subscription.updated"

    def sub_event(type: str, product: str, **kw: Any) -> dict[str, Any]:
        kw.setdefault("id", sub_id)
        return _sub_event(type, a, customer, product, **kw)

    stranger = _sub_event(up, a, "cus_not_ours", "pro", id="sub_stranger")
    assert _outcome(billing, stranger) == (stranger["id"], up, "ignored", None, "unknown customer")

    end = now + 40 * 86400
    changed = sub_event(up, "standard", created=now + 10, current_period_end=end)
    assert _outcome(billing, changed) == (
        changed["id"],
        up,
        "applied",
        a.user_id,
        "standard:active",
    )
    assert _outcome(billing, changed) == (changed["id"], up, "duplicate", a.user_id, None)
    with billing.db.uow() as uow:
        sub = uow.subscriptions.get(a.user_id)
    assert sub is not None
    assert (sub.plan, sub.status, sub.stripe_subscription_id) == ("standard", "active", sub_id)
    assert sub.current_period_end == datetime.fromtimestamp(end, UTC)

    older = sub_event(up, "basic", created=now + 5)
    assert _outcome(billing, older) == (older["id"], up, "stale", a.user_id, "basic:active")
    other_ends = sub_event("customer.subscription.deleted", "pro", id="sub_old", status="canceled",
                           created=now + 20)  # fmt: skip
    assert _outcome(billing, other_ends)[2:] == (
        "ignored", a.user_id, "another subscription is current"
    )  # fmt: skip
    foreign = _sub_event(up, a, customer, "pro", id="sub_foreign", created=now + 30)
    foreign["data"]["object"]["items"]["data"][0]["price"]["id"] = "price_not_ours"
    assert _outcome(billing, foreign)[2:] == ("ignored", a.user_id, "foreign price")

    ended = sub_event("customer.subscription.deleted", "standard", status="canceled",
                      created=now + 40)  # fmt: skip
    assert _outcome(billing, ended) == (
        ended["id"], "customer.subscription.deleted", "applied", a.user_id, "standard:canceled"
    )  # fmt: skip
    assert _usage(a)["plan"] is None


def test_a_second_plan_subscription_is_refused_with_the_way_to_change_plans(
    billing: Container, deliver: Callable[..., httpx.Response], api: Callable[..., Api]
) -> None:
    a = api()
    _subscribed(a, billing, deliver, "basic")
    error = a.post("/v1/billing/checkout", {"product": "pro"}).json()["error"]
    assert error["message"] == (
        "You already have a subscription; change plans in the billing portal."
    )
    assert error["details"] == {"plan": "basic", "portal": "/v1/billing/portal"}


def test_a_checkout_logs_the_customer_it_created_and_the_session_it_started(
    billing: Container, api: Callable[..., Api], caplog: pytest.LogCaptureFixture
) -> None:
    a = api()
    with caplog.at_level(logging.INFO, logger="reel.billing.stripe"):
        _checkout(a, "pro")
        _checkout(a, "pro_boost")
    customer = _customer_of(billing, a.user_id)
    logged = [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "reel.billing.stripe"
    ]
    assert logged == [
        {"event": "stripe_customer_created", "customer": customer},
        {"event": "checkout_started", "product": "pro", "customer": customer},
        {"event": "checkout_started", "product": "pro_boost", "customer": customer},
    ]


def test_a_checkout_that_lost_the_customer_race_uses_the_stored_customer(
    billing: Container, fake: FakeStripe, api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another first checkout stored its customer while ours was being created (without
    Stripe's idempotency making them one): the stored one is used, ours left unused."""
    a = api()
    gateway = billing.billing.gateway
    real = gateway.create_customer

    racer: list[str] = []

    def racing(user_id: str, created_at: Any) -> str:
        racer.append(real(f"{user_id}-racer", created_at))  # another customer at Stripe
        with billing.db.uow() as uow:
            assert uow.users.claim_stripe_customer(user_id, racer[0]) == racer[0]
            uow.commit()
        return real(user_id, created_at)

    monkeypatch.setattr(gateway, "create_customer", racing)
    _checkout(a, "pro_boost")
    sessions = [
        p for p in fake.calls("/v1/checkout/sessions") if p["client_reference_id"] == a.user_id
    ]
    assert {s["customer"] for s in sessions} == set(racer)
    assert _customer_of(billing, a.user_id) == racer[0]
