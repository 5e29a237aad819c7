"""A hypothesis state machine drives admit / release / refund / finish / abort / plan
changes / time passing against a plain-Python model of SPEC §2, on real Redis through both
clients, and finds no difference.

Time: scripts read Redis TIME plus ``Enforcer.time_offset_ms``. Before every call the
offset is set so script time equals model time (to within a few ms of call latency). Every
model step is a multiple of 7 s, while lease TTL (45 s), cooldowns (5/10/20 s) and boost
expiries (k·7 s + 3.5 s) are not, so no comparison ever falls within a second of a
boundary: the latency can never tip a decision. The model starts 10 minutes before a UTC
month ends, so months and hours turn (counter keys roll and are re-seeded) inside runs.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from shared.enforcement import AdmissionRequest, AdmissionTicket, Enforcer, Scope
from shared.enforcement.ports import PlanInfo
from shared.enforcement.scripts.admission import Admitted, Refused
from shared.plans import PLANS, Lane, PlanName
from shared.redis import Keys, RedisPort, hour_key, month_end, month_key, month_label
from tests.support.enforcement_sources import FakePlans

LEASE_TTL_S = 45
PROVIDER_CAP = 2
STEP_MS = 7_000
USERS = ("u0", "u1")
OUTCOMES: Counter[str] = Counter()


@dataclass
class Gen:
    ticket: AdmissionTicket
    user: str
    month: str
    hour: str
    full: bool
    expires_ms: int
    released: bool = False
    refunded: bool = False


class Ledger:
    """UsageSource over the model's generations (failed = refunded are not charged)."""

    def __init__(self) -> None:
        self.gens: dict[str, Gen] = {}
        self.history: Counter[tuple[str, str, str]] = Counter()  # charged before the run

    def _count(self, user: str, pick: str, value: str, full_only: bool = False) -> int:
        past = self.history[("full" if full_only else pick, user, value)]
        return past + sum(
            1
            for g in self.gens.values()
            if g.user == user
            and getattr(g, pick) == value
            and not g.refunded
            and (g.full or not full_only)
        )

    def count_month(self, user_id: str, month: str) -> int:
        return self._count(user_id, "month", month.replace("-", ""))

    def count_hour(self, user_id: str, hour: str) -> int:
        return self._count(user_id, "hour", hour)

    def count_full_regens(self, user_id: str, month: str) -> int:
        return self._count(user_id, "month", month.replace("-", ""), full_only=True)

    def credits_seed(self, user_id: str) -> str:
        return "-"  # this model grants no packs or grants


def start_instant() -> datetime:
    """Ten minutes before a month ends, in the future (so EXPIREATs are in the future)."""
    return month_end(datetime.now(UTC) + timedelta(days=1)) - timedelta(minutes=10)


def build_machine(redis_port: RedisPort, prefix: str) -> type[RuleBasedStateMachine]:
    class EnforcementMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = start_instant()
            self.t_ms = 0
            self.plans = FakePlans()
            self.ledger = Ledger()
            self.enforcer = Enforcer(
                redis_port,
                Keys(f"{prefix}:{uuid.uuid4().hex[:8]}"),
                self.plans,
                self.ledger,
                lease_ttl_s=LEASE_TTL_S,
                plan_cache_ttl_s=3600,
                provider_caps={Lane.INTERACTIVE: PROVIDER_CAP, Lane.BATCH: 1},
            )
            self.counters: dict[tuple[str, str, str], int] = {}
            self.cooldowns: dict[tuple[str, str], int] = {}
            self.boosts: dict[str, int] = {}
            self.bases: dict[str, PlanName | None] = {}
            self.admitted = 0

        # ---- time --------------------------------------------------------------------

        @property
        def now(self) -> datetime:
            return self.t0 + timedelta(milliseconds=self.t_ms)

        def sync_clock(self) -> None:
            script_ms = int(self.now.timestamp() * 1000)
            self.enforcer.time_offset_ms = script_ms - int(time.time() * 1000)

        @rule(steps=st.sampled_from([1, 2, 3, 7, 86, 515]))
        def advance(self, steps: int) -> None:
            self.t_ms += steps * STEP_MS

        # ---- plans -------------------------------------------------------------------

        @initialize(month_used=st.sampled_from([0, 50, 59]), hour_used=st.sampled_from([0, 9]))
        def subscribe(self, month_used: int, hour_used: int) -> None:
            """Both users on basic; u0 arrives with generations already charged (Postgres)."""
            month, hour = month_key(self.now), hour_key(self.now)
            self.ledger.history[("month", "u0", month)] = max(month_used, hour_used)
            self.ledger.history[("hour", "u0", hour)] = hour_used
            self.ledger.history[("full", "u0", month)] = min(month_used, 29)
            for user in USERS:
                self.set_plan_for(user, PlanName.BASIC, None)

        def set_plan_for(self, user: str, base: PlanName | None, boost_steps: int | None) -> None:
            boost_ms = None if boost_steps is None else self.t_ms + boost_steps * STEP_MS + 3_500
            self.bases[user] = base
            if boost_ms is None:
                self.boosts.pop(user, None)
            else:
                self.boosts[user] = boost_ms
            boost_at = None if boost_ms is None else self.t0 + timedelta(milliseconds=boost_ms)
            self.plans.plans[user] = PlanInfo(base, boost_at)
            self.enforcer.invalidate_plan(user)

        @rule(
            user=st.sampled_from(USERS),
            base=st.sampled_from([None, *PlanName]),
            boost_steps=st.none() | st.integers(0, 6),
        )
        def set_plan(self, user: str, base: PlanName | None, boost_steps: int | None) -> None:
            self.set_plan_for(user, base, boost_steps)

        def effective(self, user: str) -> PlanName | None:
            if self.boosts.get(user, -1) > self.t_ms:
                return PlanName.PRO
            return self.bases[user]

        # ---- the model of SPEC §2 ------------------------------------------------------

        def counter(self, kind: str, user: str, period: str) -> int:
            key = (kind, user, period)
            if key not in self.counters:
                pick = {"month": self.ledger.count_month, "hour": self.ledger.count_hour}
                label = period if kind == "hour" else f"{period[:4]}-{period[4:]}"
                seed = pick.get(kind, self.ledger.count_full_regens)(user, label)
                self.counters[key] = seed
            return self.counters[key]

        def live(self, user: str | None) -> int:
            return sum(
                1
                for g in self.ledger.gens.values()
                if not g.released and g.expires_ms > self.t_ms and user in (None, g.user)
            )

        def expected(self, user: str, scope: Scope, variants: int, draft: str) -> str:
            name = self.effective(user)
            if name is None:
                return "SUBSCRIPTION_REQUIRED"
            plan, full = PLANS[name], scope is Scope.REGEN_FULL
            month, hour = month_key(self.now), hour_key(self.now)
            # counters are seeded before any limit is looked at, as the script does
            used_m, used_h = self.counter("month", user, month), self.counter("hour", user, hour)
            used_f = self.counter("full", user, month) if full else 0
            if variants > plan.max_variants or (full and not plan.full_regen_allowed):
                return "PLAN_FEATURE_UNAVAILABLE"
            if used_m >= plan.generations_per_month:
                return "MONTHLY_QUOTA_EXCEEDED"
            if used_h >= plan.generations_per_hour:
                return "HOURLY_LIMIT_EXCEEDED"
            if full and not plan.full_regen_unlimited and used_f >= plan.full_regens_per_month:
                return "FULL_REGEN_CAP_EXCEEDED"
            if scope is not Scope.CREATE and self.cooldowns.get((user, draft), -1) > self.t_ms:
                return "COOLDOWN_ACTIVE"
            if self.live(user) >= plan.concurrent_jobs:
                return "CONCURRENCY_LIMIT"
            if self.live(None) >= PROVIDER_CAP:
                return "PROVIDER_BUSY"
            return "admitted"

        # ---- rules -------------------------------------------------------------------

        @rule(
            user=st.sampled_from(USERS),
            scope=st.sampled_from([Scope.CREATE, Scope.CREATE, *Scope]),
            variants=st.sampled_from([1, 1, 1, 1, 2, 3, 5]),
            draft=st.sampled_from(["d0", "d1"]),
        )
        def admit(self, user: str, scope: Scope, variants: int, draft: str) -> None:
            want = self.expected(user, scope, variants, draft)
            self.sync_clock()
            lease_id = f"g{self.admitted}"
            self.admitted += 1
            request = AdmissionRequest(
                user_id=user,
                scope=scope,
                lease_id=lease_id,
                now=self.now,
                provider="minimax",
                model="m",
                lane=Lane.INTERACTIVE,
                variants=variants,
                draft_id=draft,
            )
            admission = self.enforcer.admit(request)
            got = admission.refusal.code if isinstance(admission, Refused) else admission.kind.value
            assert got == want, (got, want)
            OUTCOMES[got] += 1
            if not isinstance(admission, Admitted):
                return
            assert admission.ticket is not None
            name = self.effective(user)
            assert name is not None
            assert admission.ticket.plan is name
            month, hour = month_key(self.now), hour_key(self.now)
            full = scope is Scope.REGEN_FULL
            for kind, period in (("month", month), ("hour", hour), ("full", month)):
                if kind != "full" or full:
                    self.counters[(kind, user, period)] += 1
            assert admission.ticket.monthly.used == self.counters[("month", user, month)]
            assert admission.ticket.hourly.used == self.counters[("hour", user, hour)]
            if scope is not Scope.CREATE:
                self.cooldowns[(user, draft)] = self.t_ms + PLANS[name].regen_cooldown_s * 1000
            gen = Gen(admission.ticket, user, month, hour, full, self.t_ms + LEASE_TTL_S * 1000)
            self.ledger.gens[lease_id] = gen

        @rule(user=st.sampled_from(USERS), draft=st.sampled_from(["d0", "d1"]))
        def regenerate_twice(self, user: str, draft: str) -> None:
            """Back-to-back regenerations of one draft: the second meets the cooldown."""
            self.admit(user, Scope.REGEN_TARGETED, 1, draft)
            self.admit(user, Scope.REGEN_TARGETED, 1, draft)

        @rule(user=st.sampled_from(USERS))
        def create(self, user: str) -> None:
            self.admit(user, Scope.CREATE, 1, "d0")

        def pick(self, data: st.DataObject) -> Gen:
            ids = list(self.ledger.gens)  # insertion order: replays draw the same ids
            return self.ledger.gens[data.draw(st.sampled_from(ids))]

        def model_refund(self, gen: Gen) -> bool:
            if gen.refunded:
                return False
            gen.refunded = True
            for kind in ("month", "full") if gen.full else ("month",):
                key = (kind, gen.user, gen.month)
                if self.counters.get(key, 0) > 0:
                    self.counters[key] -= 1
            return True

        def model_release(self, gen: Gen) -> bool | None:
            """True/False when certain; None when an expired member may or may not remain."""
            if gen.released:
                return False
            gen.released = True
            return True if gen.expires_ms > self.t_ms else None

        @precondition(lambda self: self.ledger.gens)
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            gen = self.pick(data)
            want = self.model_release(gen)
            self.sync_clock()
            got = self.enforcer.release(gen.ticket.lease)
            assert want is None or got == want

        @precondition(lambda self: self.ledger.gens)
        @rule(data=st.data())
        def refund(self, data: st.DataObject) -> None:
            gen = self.pick(data)
            assert self.enforcer.refund(gen.ticket.charge) == self.model_refund(gen)

        @precondition(lambda self: self.ledger.gens)
        @rule(data=st.data(), failed=st.booleans())
        def finish(self, data: st.DataObject, failed: bool) -> None:
            gen = self.pick(data)
            want = self.model_refund(gen) if failed else False
            self.model_release(gen)
            self.sync_clock()
            assert (
                self.enforcer.finish(gen.ticket.lease, gen.ticket.charge if failed else None)
                == want
            )

        @precondition(lambda self: self.ledger.gens)
        @rule(data=st.data())
        def abort(self, data: st.DataObject) -> None:
            gen = self.pick(data)
            # No generation ran: the hour is given back too (SPEC §9), by the one refund,
            # and only while the lease record still names the hour it charged.
            hour_back = not gen.refunded and not gen.released
            want = self.model_refund(gen)
            key = ("hour", gen.user, gen.hour)
            if hour_back and self.counters.get(key, 0) > 0:
                self.counters[key] -= 1
            self.model_release(gen)
            if gen.ticket.draft_id is not None:
                # An undone regeneration never ran: its cooldown goes with it.
                self.cooldowns.pop((gen.user, gen.ticket.draft_id), None)
            assert self.enforcer.abort(gen.ticket) == want

        @rule(user=st.sampled_from(USERS))
        def usage(self, user: str) -> None:
            month, hour = month_key(self.now), hour_key(self.now)
            want_m, want_h = self.counter("month", user, month), self.counter("hour", user, hour)
            want_f = self.counter("full", user, month)
            self.sync_clock()
            snap = self.enforcer.usage(user, self.now)
            assert snap.period == month_label(self.now)
            assert (snap.generations.used, snap.hourly.used) == (want_m, want_h)
            assert snap.full_regens.used == want_f
            assert snap.effective_plan == self.effective(user)
            assert snap.concurrency.used == self.live(user)

    return EnforcementMachine


@pytest.mark.slow
def test_enforcer_matches_the_model(port: RedisPort, run_prefix: str) -> None:
    machine = build_machine(port, run_prefix)
    examples = 150 if type(port).__name__ == "TcpRedis" else 40
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
    # the run explored the interesting outcomes, not just refusals
    assert {"admitted", "CONCURRENCY_LIMIT", "COOLDOWN_ACTIVE"} <= set(OUTCOMES), OUTCOMES
    assert {"HOURLY_LIMIT_EXCEEDED", "MONTHLY_QUOTA_EXCEEDED", "PROVIDER_BUSY"} <= set(OUTCOMES)
