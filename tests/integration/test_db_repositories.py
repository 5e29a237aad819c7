"""Repositories on real Postgres: transactions, lifecycle guards, races, ledger, billing."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.billing import EffectivePlan, PlanName, load_effective_plan
from shared.db import (
    AdmissionTruth,
    Database,
    DraftBusy,
    GenerationKind,
    GenerationStatus,
    IdempotencyConflict,
    LedgerEntry,
    NewDraft,
    NewVariant,
    OwnerGone,
    Platform,
    SubscriptionStatus,
    UnitOfWork,
    VariantContent,
)
from shared.errors import NotFound, PreconditionFailed, ServiceUnavailable, ValidationFailed

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, max_connections=6)
    yield database
    database.close()


def _uid() -> str:
    return f"u-{secrets.token_hex(6)}"


def _user(db: Database) -> str:
    user = _uid()
    with db.uow() as uow:
        uow.users.ensure(user)
        uow.commit()
    return user


def _draft(uow: UnitOfWork, owner: str) -> UUID:
    return uow.drafts.create(
        owner,
        title="Water",
        brief="3 reasons to drink water",
        platform=Platform.TIKTOK,
        tone="upbeat",
        duration_seconds=30,
        language="en",
    ).id


def _generation(uow: UnitOfWork, owner: str, draft_id: UUID, **overrides: Any) -> UUID:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "owner_id": owner,
        "draft_id": draft_id,
        "kind": GenerationKind.CREATE,
        "requested_variants": 3,
        "plan": PlanName.STANDARD,
        "period_month": "2026-11",
        "period_hour": "2026112712",
        "provider": "minimax",
        "model": "MiniMax-M2.5",
        "lane": "interactive",
        "request_id": "req-1",
    } | overrides
    return uow.generations.create(**fields).id


def _content(n: int) -> VariantContent:
    return VariantContent(f"hook {n}", f"script {n}", f"caption {n}", ("#water", f"#n{n}"))


# ----------------------------------------------------------------------------------------
# One transaction: draft + generation + variants


def test_draft_generation_and_variants_commit_together(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        stored = uow.variants.add_many(
            gen_id, draft_id, [NewVariant(i, _content(i)) for i in range(3)]
        )
        uow.commit()
    assert [v.index for v in stored] == [0, 1, 2]
    with db.uow() as uow:
        assert uow.drafts.get(owner, draft_id) is not None
        gen = uow.generations.get(owner, gen_id)
        assert gen is not None
        assert gen.status is GenerationStatus.QUEUED
        variants = uow.variants.list_for_generation(gen_id)
        assert variants[2].content == _content(2)
        assert uow.variants.get_for_draft(draft_id, variants[0].id) == variants[0]
        assert uow.variants.get_owned(owner, variants[0].id) == variants[0]
        assert uow.variants.get_owned(_uid(), variants[0].id) is None


def test_a_failure_inside_rolls_back_everything(db: Database) -> None:
    owner = _user(db)
    bad = VariantContent("hook", "script", "x" * 2201, ())  # caption over its bound
    with pytest.raises(Exception), db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        uow.variants.add_many(
            gen_id,
            draft_id,
            [NewVariant(0, _content(0)), NewVariant(1, _content(1)), NewVariant(2, bad)],
        )
        uow.commit()
    with db.uow() as uow:
        assert uow.drafts.get(owner, draft_id) is None
        assert uow.generations.get_any(gen_id) is None
        assert uow.variants.list_for_generation(gen_id) == []


def test_variants_are_idempotent_per_generation_and_index(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        first = uow.variants.add_many(gen_id, draft_id, [NewVariant(0, _content(0))])
        again = uow.variants.add_many(
            gen_id, draft_id, [NewVariant(0, _content(9)), NewVariant(1, _content(1))]
        )
        uow.commit()
    assert again[0] == first[0]  # the redelivered index 0 changed nothing
    assert [v.index for v in again] == [0, 1]


# ----------------------------------------------------------------------------------------
# Generation lifecycle


def test_status_moves_only_forward(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        g = uow.generations
        assert g.mark_succeeded(gen_id, NOW) is False  # queued → succeeded refused
        assert g.mark_running(gen_id, NOW) is True
        assert g.mark_running(gen_id, NOW) is False  # redelivery loses
        assert g.mark_succeeded(gen_id, NOW) is True
        assert g.mark_running(gen_id, NOW) is False  # succeeded → running refused
        assert g.mark_failed(gen_id, "X", "late", NOW) is False
        done = g.get_any(gen_id)
        assert done is not None
        assert done.status is GenerationStatus.SUCCEEDED
        assert done.attempts == 1
        assert done.started_at == NOW
        assert done.completed_at == NOW

        other = _generation(uow, owner, draft_id)
        assert g.mark_failed(other, "PROVIDER_BAD_OUTPUT", "m" * 900, NOW) is True
        assert g.mark_succeeded(other, NOW) is False  # failed → succeeded refused
        assert g.mark_running(other, NOW) is False
        failed = g.get_any(other)
        assert failed is not None
        assert failed.error_code == "PROVIDER_BAD_OUTPUT"
        assert failed.error_message is not None
        assert len(failed.error_message) == 500
        uow.commit()


def test_terminal_moves_are_fenced_on_the_claim(db: Database) -> None:
    """A delivery taken over (claim 2 after claim 1 went stale) can no longer end the job."""
    owner = _user(db)
    later = NOW + timedelta(minutes=10)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        g = uow.generations
        assert g.claim(gen_id, NOW, NOW - timedelta(minutes=5)) == 1
        assert g.claim(gen_id, NOW, NOW - timedelta(minutes=5)) is None  # still fresh
        assert g.claim(gen_id, later, later - timedelta(minutes=5)) == 2  # take-over
        assert g.mark_succeeded(gen_id, later, attempt=1) is False
        assert g.mark_failed(gen_id, "X", "old", later, attempt=1) is False
        assert g.unclaim(gen_id, 1) is False
        assert g.unclaim(gen_id, 2) is True  # back to queued; the next claim is 3
        assert g.claim(gen_id, later, later - timedelta(minutes=5)) == 3
        assert g.mark_succeeded(gen_id, later, attempt=3) is True
        done = g.get_any(gen_id)
        assert done is not None
        assert (done.status, done.attempts) == (GenerationStatus.SUCCEEDED, 3)
        uow.commit()


def test_one_active_generation_per_draft(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        first = _generation(uow, owner, draft_id)
        uow.commit()
    with pytest.raises(DraftBusy) as info, db.uow() as uow:
        _generation(uow, owner, draft_id, kind=GenerationKind.REGEN_FULL)
    assert info.value.code == "GENERATION_IN_PROGRESS"
    assert info.value.status == 409
    with db.uow() as uow:
        active = uow.generations.active_for_draft(draft_id)
        assert active is not None
        assert active.id == first
        assert uow.generations.mark_failed(first, "X", "y", NOW)
        second = _generation(uow, owner, draft_id, kind=GenerationKind.REGEN_FULL)
        uow.commit()
    with db.uow() as uow:
        assert [g.id for g in uow.generations.list_for_draft(draft_id)] == [second, first]
        assert uow.drafts.last_variant_count(draft_id) == 3


def test_concurrent_regenerations_on_one_draft_exactly_one_wins(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        uow.commit()
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def regen() -> None:
        barrier.wait()
        try:
            with db.uow() as uow:
                _generation(uow, owner, draft_id, kind=GenerationKind.REGEN_FULL)
                uow.commit()
            outcomes.append("won")
        except DraftBusy:
            outcomes.append("busy")

    threads = [threading.Thread(target=regen) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["busy"] * 4 + ["won"]


def test_idempotency_triple_conflict(db: Database) -> None:
    owner = _user(db)
    key = secrets.token_hex(8)
    with db.uow() as uow:
        first = _generation(
            uow,
            owner,
            _draft(uow, owner),
            idempotency_scope="create",
            idempotency_key=key,
            request_fingerprint="f" * 64,
        )
        uow.commit()
    with db.uow() as uow:
        with pytest.raises(IdempotencyConflict) as info:
            _generation(
                uow, owner, _draft(uow, owner), idempotency_scope="create", idempotency_key=key
            )
        assert info.value.key == key
        # The transaction is still usable: replay the stored generation from it.
        stored = uow.generations.find_by_idempotency(owner, "create", key)
        assert stored is not None
        assert stored.id == first
        # Another scope or another user with the same key is a different request.
        _generation(uow, owner, _draft(uow, owner), idempotency_scope="regen", idempotency_key=key)
        other = _user(db)
        _generation(uow, other, _draft(uow, other), idempotency_scope="create", idempotency_key=key)
        uow.commit()


def test_owner_scoping_and_stuck_sweep(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        uow.commit()
    with db.uow() as uow:
        assert uow.generations.get(_uid(), gen_id) is None
        assert uow.drafts.get(_uid(), draft_id) is None
        future = datetime.now(UTC) + timedelta(minutes=1)
        stuck = uow.generations.find_stuck(future, limit=10_000)
        assert gen_id in {g.id for g in stuck}
        assert gen_id not in {
            g.id for g in uow.generations.find_stuck(NOW - timedelta(days=9999), 10)
        }


def test_usage_seed_counts(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        ids = []
        for kind, hour in [
            (GenerationKind.CREATE, "2026112710"),
            (GenerationKind.REGEN_FULL, "2026112710"),
            (GenerationKind.REGEN_FULL, "2026112711"),
            (GenerationKind.REGEN_TARGETED, "2026112711"),
        ]:
            gid = _generation(uow, owner, _draft(uow, owner), kind=kind, period_hour=hour)
            ids.append(gid)
        _generation(
            uow, owner, _draft(uow, owner), period_month="2026-10", period_hour="2026103101"
        )
        uow.generations.mark_failed(ids[2], "X", "refunded", NOW)
        g = uow.generations
        assert g.count_charged_month(owner, "2026-11") == 3
        assert g.count_charged_month(owner, "2026-10") == 1
        assert g.count_in_hour(owner, "2026112711") == 2  # failed still counts in the hour
        assert g.count_full_regens_month(owner, "2026-11") == 1
        assert g.count_charged_month(_uid(), "2026-11") == 0
        # An undone admission (never queued) gave its hourly unit back: it is not counted.
        assert g.fail_and_forget_key(ids[1], "The job could not be queued.", NOW)
        assert g.count_in_hour(owner, "2026112710") == 1
        assert g.count_charged_month(owner, "2026-11") == 2
        # The same counts, and the plan, in one statement (a first request of a period).
        uow.subscriptions.upsert(owner, PlanName.PRO, SubscriptionStatus.ACTIVE)
        boost = uow.boosts.extend(owner, NOW, 30)
        every = frozenset({"month", "hour", "full"})
        truth = g.admission_truth(owner, month="2026-11", hour="2026112711", plan=True,
                                  counters=every)  # fmt: skip
        # (ids[1], the full regeneration, was undone above: counted nowhere.)
        assert truth == AdmissionTruth(PlanName.PRO, boost, month=2, hour=2, full=0)
        only_hour = g.admission_truth(owner, month="2026-11", hour="2026112710", plan=False,
                                      counters=frozenset({"hour"}))  # fmt: skip
        assert only_hour == AdmissionTruth(None, None, month=None, hour=1, full=None)
        uow.subscriptions.cancel(owner)  # a canceled subscription grants no plan
        canceled = g.admission_truth(owner, month="2026-12", hour="x", plan=True, counters=every)
        assert canceled == AdmissionTruth(None, boost, 0, 0, 0)
        nobody = g.admission_truth(_uid(), month="2026-11", hour="x", plan=True, counters=every)
        assert nobody == AdmissionTruth(None, None, 0, 0, 0)


def test_create_with_draft_writes_draft_and_generation_in_one_statement(
    db: Database,
) -> None:
    owner = _uid()
    key = secrets.token_hex(8)
    fields: dict[str, Any] = {
        "owner_id": owner,
        "kind": GenerationKind.CREATE,
        "requested_variants": 2,
        "plan": PlanName.PRO,
        "period_month": "2026-11",
        "period_hour": "2026112712",
        "provider": "minimax",
        "model": "MiniMax-M2.5",
        "lane": "interactive",
        "request_id": "req-1",
        "idempotency_scope": "create",
        "idempotency_key": key,
        "request_fingerprint": "f" * 64,
    }

    def new_draft() -> NewDraft:
        return NewDraft(uuid4(), "Water", "3 reasons", Platform.TIKTOK, None, 30, "en")

    # No user row (an account deleted after the admission): nothing is written, and the
    # user is not brought back.
    with pytest.raises(OwnerGone), db.autocommit() as uow:
        uow.generations.create_with_draft(id=uuid4(), draft=new_draft(), **fields)
    with db.uow() as uow:
        assert uow.users.get(owner) is None
        uow.users.touch(owner)
        uow.commit()
    first_draft = new_draft()
    with db.autocommit() as uow:
        gen = uow.generations.create_with_draft(id=uuid4(), draft=first_draft, **fields)
    assert gen.draft_id == first_draft.id
    assert gen.status is GenerationStatus.QUEUED
    second_draft = new_draft()
    with pytest.raises(IdempotencyConflict), db.autocommit() as uow:
        uow.generations.create_with_draft(id=uuid4(), draft=second_draft, **fields)
    with db.uow() as uow:
        assert uow.users.get(owner) is not None
        draft = uow.drafts.get(owner, first_draft.id)
        assert draft is not None
        assert draft.brief == "3 reasons"
        assert uow.generations.get(owner, gen.id) == gen
        # The key was taken: nothing of the second request was written, not even its draft.
        assert uow.drafts.get(owner, second_draft.id) is None


# ----------------------------------------------------------------------------------------
# Drafts


def test_draft_update_versions_and_guards(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        variant = uow.variants.add_many(gen_id, draft_id, [NewVariant(0, _content(0))])[0]
        other_draft = _draft(uow, owner)
        uow.commit()
    with db.uow() as uow:
        d = uow.drafts
        updated = d.update(owner, draft_id, {"title": "New", "duration_seconds": 45}, {1})
        assert (updated.title, updated.duration_seconds, updated.version) == ("New", 45, 2)
        assert updated.etag == '"2"'
        with pytest.raises(PreconditionFailed):
            d.update(owner, draft_id, {"title": "Stale"}, {1})
        uow.commit()
    with db.uow() as uow:
        d = uow.drafts
        with pytest.raises(NotFound):
            d.update(_uid(), draft_id, {"title": "Not yours"}, None)
        with pytest.raises(ValidationFailed) as info:
            d.update(owner, other_draft, {"selected_variant_id": variant.id}, None)
        assert info.value.details["fields"][0]["loc"] == ["selected_variant_id"]
    with db.uow() as uow:
        picked = uow.drafts.update(owner, draft_id, {"selected_variant_id": variant.id}, {2})
        assert picked.selected_variant_id == variant.id
        assert picked.version == 3
        cleared = uow.drafts.update(owner, draft_id, {"selected_variant_id": None}, None)
        assert cleared.selected_variant_id is None
        assert uow.drafts.update(owner, draft_id, {}, {4}).version == 4
        with pytest.raises(ValueError):
            uow.drafts.update(owner, draft_id, {"owner_id": "me"}, None)


# ----------------------------------------------------------------------------------------
# Users, subscriptions, boosts, Stripe events, effective plan


def test_users_and_stripe_customer(db: Database) -> None:
    user = _uid()
    customer = f"cus_{secrets.token_hex(6)}"
    with db.uow() as uow:
        created = uow.users.ensure(user)
        assert uow.users.ensure(user) == created
        assert uow.users.set_stripe_customer(user, customer) is not None
        found = uow.users.by_stripe_customer(customer)
        assert found is not None
        assert found.id == user
        assert uow.users.set_stripe_customer(_uid(), "cus_x") is None
        uow.commit()


def test_subscription_ordering_guard(db: Database) -> None:
    user = _user(db)
    t1, t2 = NOW, NOW + timedelta(minutes=5)
    with db.uow() as uow:
        s = uow.subscriptions
        s.upsert(user, PlanName.PRO, SubscriptionStatus.ACTIVE, source_event_created=t2)
        kept = s.upsert(user, PlanName.BASIC, SubscriptionStatus.PAST_DUE, source_event_created=t1)
        assert (kept.plan, kept.status) == (PlanName.PRO, SubscriptionStatus.ACTIVE)
        newer = s.upsert(
            user,
            PlanName.STANDARD,
            SubscriptionStatus.ACTIVE,
            source_event_created=t2,
            stripe_subscription_id="sub_1",
            current_period_end=t2 + timedelta(days=30),
        )
        assert newer.plan is PlanName.STANDARD
        assert newer.stripe_subscription_id == "sub_1"
        admin = s.upsert(user, PlanName.BASIC, SubscriptionStatus.ACTIVE)  # admin: no guard
        assert admin.plan is PlanName.BASIC
        assert admin.source_event_created == t2
        assert s.cancel(user) is True
        got = s.get(user)
        assert got is not None
        assert got.status is SubscriptionStatus.CANCELED
        assert not got.grants_plan
        assert s.cancel(_uid()) is False
        uow.commit()


def test_boost_extends_from_the_later_of_now_and_expiry(db: Database) -> None:
    user = _user(db)
    with db.uow() as uow:
        assert uow.boosts.get_expiry(user) is None
        assert uow.boosts.extend(user, NOW, 30) == NOW + timedelta(days=30)
        assert uow.boosts.extend(user, NOW, 30) == NOW + timedelta(days=60)
        later = NOW + timedelta(days=100)  # expired by then: extends from now
        assert uow.boosts.extend(user, later, 30) == later + timedelta(days=30)
        uow.commit()


def test_concurrent_boost_extends_add_up_exactly(db: Database) -> None:
    user = _user(db)
    errors: list[BaseException] = []
    barrier = threading.Barrier(5)

    def buy() -> None:
        barrier.wait()
        try:
            with db.uow() as uow:
                uow.boosts.extend(user, NOW, 30)
                uow.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=buy) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with db.uow() as uow:
        assert uow.boosts.get_expiry(user) == NOW + timedelta(days=150)


def test_stripe_events_are_recorded_once(db: Database) -> None:
    event = f"evt_{secrets.token_hex(8)}"
    with db.uow() as uow:
        assert uow.stripe_events.record_once(event, "invoice.payment_failed", NOW) is True
        assert uow.stripe_events.record_once(event, "invoice.payment_failed", NOW) is False
        uow.commit()
    forgotten = f"evt_{secrets.token_hex(8)}"
    with db.uow() as uow:  # not committed: a redelivery processes it again
        assert uow.stripe_events.record_once(forgotten, "x", NOW) is True
    with db.uow() as uow:
        assert uow.stripe_events.record_once(forgotten, "x", NOW) is True


def test_stripe_tombstones_bury_a_users_stripe_ids_once(db: Database) -> None:
    user, run = f"u_{secrets.token_hex(6)}", secrets.token_hex(6)
    customer, sub = f"cus_{run}", f"sub_{run}"
    with db.uow() as uow:
        uow.users.ensure(user)
        uow.users.set_stripe_customer(user, customer)
        uow.subscriptions.upsert(user, PlanName.PRO, SubscriptionStatus.ACTIVE,
                                 stripe_subscription_id=sub)  # fmt: skip
        assert uow.stripe_tombstones.buried([customer, sub]) is False
        assert uow.stripe_tombstones.bury_user(user, NOW) == 2
        assert uow.users.delete(user) is True
        uow.commit()
    with db.uow() as uow:
        assert uow.stripe_tombstones.buried([customer]) is True
        assert uow.stripe_tombstones.buried(["cus_other", sub]) is True
        assert uow.stripe_tombstones.buried(["cus_other"]) is False
        assert uow.stripe_tombstones.buried([]) is False
        assert uow.stripe_tombstones.bury_user(user, NOW) == 0  # deleted again: nothing
        rows = uow._session.run(
            "SELECT stripe_id, kind FROM stripe_tombstones WHERE stripe_id IN (:c, :s) "
            "ORDER BY kind",
            c=customer,
            s=sub,
        )
    assert [tuple(r) for r in rows] == [(customer, "customer"), (sub, "subscription")]


def test_effective_plan(db: Database) -> None:
    nobody, subscriber, boosted, lapsed = (_user(db) for _ in range(4))
    with db.uow() as uow:
        uow.subscriptions.upsert(subscriber, PlanName.BASIC, SubscriptionStatus.TRIALING)
        uow.subscriptions.upsert(boosted, PlanName.STANDARD, SubscriptionStatus.ACTIVE)
        uow.boosts.extend(boosted, NOW, 30)
        uow.subscriptions.upsert(lapsed, PlanName.PRO, SubscriptionStatus.PAST_DUE)
        uow.commit()
    with db.uow() as uow:
        assert load_effective_plan(uow, nobody, NOW) == EffectivePlan(None, None, None)
        assert load_effective_plan(uow, subscriber, NOW).effective is PlanName.BASIC
        plan = load_effective_plan(uow, boosted, NOW)
        assert plan == EffectivePlan(PlanName.STANDARD, NOW + timedelta(days=30), PlanName.PRO)
        after = load_effective_plan(uow, boosted, NOW + timedelta(days=30))
        assert after.effective is PlanName.STANDARD  # now == expires_at: boost over
        assert load_effective_plan(uow, lapsed, NOW).effective is None


# ----------------------------------------------------------------------------------------
# Ledger


def _ledger(gen_id: UUID, owner: str, plan: PlanName, tokens: int, cost: int) -> LedgerEntry:
    return LedgerEntry(
        generation_id=gen_id,
        owner_id=owner,
        month="2031-07",
        plan=plan,
        kind=GenerationKind.CREATE,
        provider="minimax",
        model="MiniMax-M2.5",
        prompt_tokens=tokens,
        completion_tokens=tokens * 2,
        cost_micro_usd=cost,
        billable=cost > 100,
    )


def test_ledger_records_once_with_the_database_time_or_the_given_one(db: Database) -> None:
    # Cost reports over the ledger: tests/integration/test_reporting_rollup.py.
    alice = _user(db)
    at = datetime(2031, 7, 31, 23, 59, 59, 999999, tzinfo=UTC)
    with db.uow() as uow:
        entries = []
        for tokens, cost in ((10, 500), (20, 700)):
            gen_id = _generation(
                uow, alice, _draft(uow, alice), plan=PlanName.PRO, period_month="2031-07"
            )
            entry = _ledger(gen_id, alice, PlanName.PRO, tokens, cost)
            assert uow.ledger.record(entry) is True
            assert uow.ledger.record(entry) is False  # redelivery
            entries.append(entry)
        backfilled = replace(_ledger(gen_id, alice, PlanName.PRO, 1, 1), created_at=at)
        stored = uow.ledger.get(entries[0].generation_id)
        uow.commit()
    assert stored == entries[0]
    assert stored is not None
    assert stored.created_at is not None
    assert abs(stored.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    with db.uow() as uow:
        gen_id = _generation(uow, alice, _draft(uow, alice), plan=PlanName.PRO)
        backfilled = replace(backfilled, generation_id=gen_id)
        assert uow.ledger.record(backfilled) is True
        got = uow.ledger.get(gen_id)
        uow.commit()
    assert got is not None
    assert got.created_at == at


def test_unique_violations_outside_the_known_ones_are_internal(db: Database) -> None:
    owner = _user(db)
    with db.uow() as uow:
        draft_id = _draft(uow, owner)
        gen_id = _generation(uow, owner, draft_id)
        uow.generations.mark_failed(gen_id, "X", "y", NOW)
        with pytest.raises(Exception) as info:
            _generation(uow, owner, draft_id, id=gen_id)
        assert not isinstance(info.value, ServiceUnavailable | DraftBusy | IdempotencyConflict)
        assert getattr(info.value, "constraint", None) == "generations_pkey"


def test_claim_stripe_customer_keeps_the_first(database_url: str) -> None:
    import secrets

    from shared.db import Database

    db = Database(database_url)
    user = f"u-{secrets.token_hex(5)}"
    with db.uow() as uow:
        uow.users.ensure(user)
        assert uow.users.claim_stripe_customer(user, "cus_first") == "cus_first"
        assert uow.users.claim_stripe_customer(user, "cus_second") == "cus_first"
        assert uow.users.claim_stripe_customer("nobody-" + user, "cus_x") is None
        uow.commit()
    db.close()
