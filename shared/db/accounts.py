"""Users, subscriptions, boosts, processed Stripe events and deleted accounts' Stripe ids."""

# ruff: noqa: S608 - SQL here is assembled only from this module's constant column lists
# and fixed fragments; every value travels as a bound parameter.

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db.generations import CANCEL_SCOPE
from shared.db.models import Subscription, SubscriptionStatus, User
from shared.db.session import Session
from shared.plans import PlanName

__all__ = [
    "PgBoosts",
    "PgStripeEvents",
    "PgStripeTombstones",
    "PgSubscriptions",
    "PgUsers",
    "UserFootprint",
]


@dataclass(frozen=True, slots=True)
class UserFootprint:
    """What names a user's Redis keys, read from Postgres before the rows go.

    ``months`` / ``hours``: periods the user was charged in (counter keys);
    ``draft_ids``: drafts with a recent generation (cooldown keys);
    ``idempotency``: recent (scope, key) pairs (idempotency records).
    """

    months: tuple[str, ...]
    hours: tuple[str, ...]
    draft_ids: tuple[str, ...]
    idempotency: tuple[tuple[str, str], ...]


_USER_COLS = "id, stripe_customer_id, created_at"
_SUB_COLS = (
    "user_id, plan, status, stripe_subscription_id, current_period_end, "
    "source_event_created, updated_at"
)


def _user(row: list[Any]) -> User:
    return User(id=row[0], stripe_customer_id=row[1], created_at=row[2])


def _subscription(row: list[Any]) -> Subscription:
    return Subscription(
        user_id=row[0],
        plan=PlanName(row[1]),
        status=SubscriptionStatus(row[2]),
        stripe_subscription_id=row[3],
        current_period_end=row[4],
        source_event_created=row[5],
        updated_at=row[6],
    )


class PgUsers:
    def __init__(self, session: Session) -> None:
        self._s = session

    def ensure(self, user_id: str) -> User:
        """The user row, inserted on first sight (concurrent first requests are fine)."""
        rows = self._s.run(
            f"INSERT INTO users (id) VALUES (:id) ON CONFLICT (id) DO NOTHING "
            f"RETURNING {_USER_COLS}",
            id=user_id,
        )
        if rows:
            return _user(rows[0])
        existing = self.get(user_id)
        if existing is None:  # only if deleted between the two statements
            raise LookupError(f"user {user_id!r} vanished while being ensured")
        return existing

    def touch(self, user_id: str) -> None:
        """Make sure the user row exists, in one statement (``ensure`` when the row is
        not needed: every create pays for this, and ``ensure`` costs a second SELECT)."""
        self._s.run("INSERT INTO users (id) VALUES (:id) ON CONFLICT (id) DO NOTHING", id=user_id)

    def get(self, user_id: str) -> User | None:
        rows = self._s.run(f"SELECT {_USER_COLS} FROM users WHERE id = :id", id=user_id)
        return _user(rows[0]) if rows else None

    def set_stripe_customer(self, user_id: str, customer_id: str) -> User | None:
        """Remember the user's Stripe customer; None when the user does not exist."""
        rows = self._s.run(
            f"UPDATE users SET stripe_customer_id = :c WHERE id = :id RETURNING {_USER_COLS}",
            id=user_id,
            c=customer_id,
        )
        return _user(rows[0]) if rows else None

    def claim_stripe_customer(self, user_id: str, customer_id: str) -> str | None:
        """Store ``customer_id`` only if the user has none yet; return the one stored.

        The conditional UPDATE is the race guard: two first checkouts can never leave
        the user pointing at two customers. None when the user does not exist.
        """
        self._s.run(
            "UPDATE users SET stripe_customer_id = :c "
            "WHERE id = :id AND stripe_customer_id IS NULL",
            id=user_id,
            c=customer_id,
        )
        user = self.get(user_id)
        return user.stripe_customer_id if user else None

    def lock(self, user_id: str) -> bool:
        """Lock the user row FOR UPDATE (no create can share-lock it meanwhile); False
        when there is none."""
        return bool(self._s.run("SELECT 1 FROM users WHERE id = :id FOR UPDATE", id=user_id))

    def delete(self, user_id: str) -> bool:
        """Delete the user and, by cascade, subscription, boost, drafts, generations,
        variants and assets. False when there was no such user."""
        return bool(self._s.run("DELETE FROM users WHERE id = :id RETURNING id", id=user_id))

    def footprint(
        self,
        user_id: str,
        *,
        hours_since: datetime,
        cooldowns_since: datetime,
        idempotency_since: datetime,
        asset_scope: str,
    ) -> UserFootprint:
        """The periods, drafts and Idempotency-Keys that name the user's Redis keys.

        Only what can still exist in Redis is read: hourly counters and cooldowns expire
        within hours, idempotency records within a day; monthly counters are read for
        every month (few rows, and a grace day past month end).
        """
        rows = self._s.run(
            """
            SELECT 'm', period_month, NULL FROM generations WHERE owner_id = :u
                GROUP BY period_month
            UNION ALL
            SELECT 'h', period_hour, NULL FROM generations
                WHERE owner_id = :u AND created_at >= CAST(:h AS timestamptz)
                GROUP BY period_hour
            UNION ALL
            SELECT 'd', CAST(draft_id AS text), NULL FROM generations
                WHERE owner_id = :u AND created_at >= CAST(:c AS timestamptz)
                GROUP BY draft_id
            UNION ALL
            SELECT 'i', idempotency_scope, idempotency_key FROM generations
                WHERE owner_id = :u AND idempotency_key IS NOT NULL
                AND created_at >= CAST(:i AS timestamptz)
            UNION ALL
            SELECT 'i', :asset_scope, idempotency_key FROM assets
                WHERE owner_id = :u AND idempotency_key IS NOT NULL
                AND created_at >= CAST(:i AS timestamptz)
            UNION ALL
            SELECT 'i', :cancel_scope, idempotency_key FROM cancel_keys
                WHERE owner_id = :u AND created_at >= CAST(:i AS timestamptz)
            """,
            u=user_id,
            h=hours_since,
            c=cooldowns_since,
            i=idempotency_since,
            asset_scope=asset_scope,
            cancel_scope=CANCEL_SCOPE,
        )
        return UserFootprint(
            months=tuple(r[1] for r in rows if r[0] == "m"),
            hours=tuple(r[1] for r in rows if r[0] == "h"),
            draft_ids=tuple(r[1] for r in rows if r[0] == "d"),
            idempotency=tuple((r[1], r[2]) for r in rows if r[0] == "i"),
        )

    def by_stripe_customer(self, customer_id: str) -> User | None:
        rows = self._s.run(
            f"SELECT {_USER_COLS} FROM users WHERE stripe_customer_id = :c", c=customer_id
        )
        return _user(rows[0]) if rows else None


class PgSubscriptions:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, user_id: str) -> Subscription | None:
        rows = self._s.run(f"SELECT {_SUB_COLS} FROM subscriptions WHERE user_id = :u", u=user_id)
        return _subscription(rows[0]) if rows else None

    def upsert(
        self,
        user_id: str,
        plan: PlanName,
        status: SubscriptionStatus,
        *,
        stripe_subscription_id: str | None = None,
        current_period_end: datetime | None = None,
        source_event_created: datetime | None = None,
    ) -> Subscription:
        """Write the user's subscription and return what is stored afterwards.

        With ``source_event_created`` (a Stripe event's ``created``), the write applies
        only if no newer event already wrote the row: Stripe delivers out of order and an
        older state must never overwrite a newer one. Equal timestamps apply (Stripe's
        one-second resolution; the later delivery wins). Without it (admin), it always
        applies and keeps the last event time as the guard.
        """
        rows = self._s.run(
            f"""
            INSERT INTO subscriptions AS s (user_id, plan, status, stripe_subscription_id,
                current_period_end, source_event_created, updated_at)
            VALUES (:u, :plan, :status, :sub, CAST(:end AS timestamptz),
                CAST(:evt AS timestamptz), now())
            ON CONFLICT (user_id) DO UPDATE SET
                plan = EXCLUDED.plan,
                status = EXCLUDED.status,
                stripe_subscription_id = EXCLUDED.stripe_subscription_id,
                current_period_end = EXCLUDED.current_period_end,
                source_event_created = coalesce(EXCLUDED.source_event_created,
                                                s.source_event_created),
                updated_at = now()
            WHERE EXCLUDED.source_event_created IS NULL
               OR s.source_event_created IS NULL
               OR s.source_event_created <= EXCLUDED.source_event_created
            RETURNING {_SUB_COLS}
            """,
            u=user_id,
            plan=PlanName(plan).value,
            status=SubscriptionStatus(status).value,
            sub=stripe_subscription_id,
            end=current_period_end,
            evt=source_event_created,
        )
        if rows:
            return _subscription(rows[0])
        current = self.get(user_id)  # the guard refused: a newer event is stored
        if current is None:
            raise LookupError(f"subscription of {user_id!r} vanished during upsert")
        return current

    def cancel(self, user_id: str) -> bool:
        """Mark the subscription canceled; False when the user has none."""
        rows = self._s.run(
            "UPDATE subscriptions SET status = 'canceled', updated_at = now() "
            "WHERE user_id = :u RETURNING user_id",
            u=user_id,
        )
        return bool(rows)


class PgBoosts:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get_expiry(self, user_id: str) -> datetime | None:
        rows = self._s.run("SELECT expires_at FROM boosts WHERE user_id = :u", u=user_id)
        return rows[0][0] if rows else None

    def extend(self, user_id: str, now: datetime, days: int) -> datetime:
        """Extend by ``days`` from the later of ``now`` and the current expiry; the new expiry.

        One statement: the upsert's row lock serialises concurrent purchases, so N
        extends always add exactly N × days (same rule as ``plans.extend_boost``).
        """
        if days < 1:
            raise ValueError("days must be positive")
        rows = self._s.run(
            """
            INSERT INTO boosts AS b (user_id, expires_at, updated_at)
            VALUES (:u, CAST(:now AS timestamptz) + make_interval(days => CAST(:d AS int)),
                    CAST(:now AS timestamptz))
            ON CONFLICT (user_id) DO UPDATE SET
                expires_at = greatest(b.expires_at, CAST(:now AS timestamptz))
                             + make_interval(days => CAST(:d AS int)),
                updated_at = CAST(:now AS timestamptz)
            RETURNING expires_at
            """,
            u=user_id,
            now=now,
            d=days,
        )
        expires_at: datetime = rows[0][0]
        return expires_at


class PgStripeEvents:
    def __init__(self, session: Session) -> None:
        self._s = session

    def record_once(self, event_id: str, type: str, created: datetime) -> bool:
        """True the first time ``event_id`` is seen (in this transaction's commit).

        Record and apply the event in the same unit of work: if applying fails, the
        rollback forgets the id too and Stripe's redelivery is processed again.
        """
        rows = self._s.run(
            "INSERT INTO stripe_events (event_id, type, created) "
            "VALUES (:id, :type, CAST(:created AS timestamptz)) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            id=event_id,
            type=type,
            created=created,
        )
        return bool(rows)


class PgStripeTombstones:
    """Stripe ids of deleted accounts (``migrations/0005``): their events grant nothing."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def bury_user(self, user_id: str, now: datetime) -> int:
        """Record the user's Stripe customer and subscription ids; how many were new.

        Run in the deleting transaction, before the user row goes (the ids are read from
        it). A second deletion finds no row and buries nothing.
        """
        rows = self._s.run(
            """
            INSERT INTO stripe_tombstones (stripe_id, kind, buried_at)
            SELECT stripe_customer_id, 'customer', CAST(:now AS timestamptz) FROM users
                WHERE id = :u AND stripe_customer_id IS NOT NULL
            UNION ALL
            SELECT stripe_subscription_id, 'subscription', CAST(:now AS timestamptz)
                FROM subscriptions WHERE user_id = :u AND stripe_subscription_id IS NOT NULL
            ON CONFLICT (stripe_id) DO NOTHING
            RETURNING stripe_id
            """,
            u=user_id,
            now=now,
        )
        return len(rows)

    def buried(self, stripe_ids: list[str]) -> bool:
        """True when any of ``stripe_ids`` belonged to a deleted account."""
        if not stripe_ids:
            return False
        rows = self._s.run(
            "SELECT 1 FROM stripe_tombstones WHERE stripe_id = ANY(CAST(:ids AS text[])) LIMIT 1",
            ids=stripe_ids,
        )
        return bool(rows)
