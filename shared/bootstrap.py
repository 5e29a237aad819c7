"""The composition root: builds every adapter lazily, once per instance, thread-safely.

Nothing connects at import or construction (cold starts pay for every import-time
side effect). The first request that needs Postgres opens the pool; the first that
needs Redis opens the client; the Secret Manager client is only ever made by
``load_settings`` when a secret name is configured. Tests and the local server build a
``Container`` with explicit settings, overrides (built adapters) or factories (adapters
built on first use).

This module builds production's adapters only: it never imports ``devtools``. In
development the embedded Postgres and Redis, the local queue and the offline writer are
passed in by ``devtools.compose.dev_container`` (``make dev``, ``make demo``, the tests,
the benchmarks); a development ``Container`` built without them asks for what production
would need (``DATABASE_URL`` …) and names that composition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from shared.clock import Clock, SystemClock
from shared.config import ConfigError, Settings, check_configuration, get_settings

if TYPE_CHECKING:
    from shared.ai.types import LLMPort
    from shared.billing.stripe_billing import StripeBilling
    from shared.db.database import Database
    from shared.enforcement import Enforcer
    from shared.enforcement.ports import PlanInfo, Truth
    from shared.queue.base import QueuePort
    from shared.queue.signing import SignatureVerifier, TokenLedger
    from shared.redis.client import RedisPort
    from shared.redis.keys import Keys
    from shared.services.events import StatusBoard
    from shared.services.worker import WorkerDeps

__all__ = [
    "DEV_COMPOSITION",
    "Container",
    "DbPlanSource",
    "DbTruthSource",
    "DbUsageSource",
    "check_startup",
    "get_container",
    "set_container",
]

T = TypeVar("T")


class DbPlanSource:
    """``PlanSource`` over Postgres: the subscription and boost the enforcer caches."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db, self._clock = db, clock

    def load_plan(self, user_id: str) -> PlanInfo:
        from shared.billing.effective import load_effective_plan
        from shared.enforcement.ports import PlanInfo

        with self._db.uow() as uow:
            eff = load_effective_plan(uow, user_id, self._clock.now())
        return PlanInfo(base_plan=eff.base_plan, boost_expires_at=eff.boost_expires_at)


class DbTruthSource:
    """``TruthSource`` over Postgres: plan and missing counts in one statement (its own
    transaction, one round trip), for a user's first request of a period."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load_truth(
        self, user_id: str, now: datetime, *, plan: bool, counters: frozenset[str]
    ) -> Truth:
        from shared.enforcement.ports import PlanInfo, Truth
        from shared.redis.keys import hour_label, month_label

        with self._db.autocommit() as uow:
            found = uow.generations.admission_truth(
                user_id, month=month_label(now), hour=hour_label(now), plan=plan,
                counters=counters,
            )  # fmt: skip
        return Truth(
            plan=PlanInfo(found.base_plan, found.boost_expires_at) if plan else None,
            month=found.month,
            hour=found.hour,
            full=found.full,
            credits=found.credits,
        )


class DbUsageSource:
    """``UsageSource`` over Postgres: counts that seed missing Redis counters."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def count_month(self, user_id: str, month: str) -> int:
        with self._db.uow() as uow:
            return uow.generations.count_charged_month(user_id, month)

    def count_hour(self, user_id: str, hour: str) -> int:
        with self._db.uow() as uow:
            return uow.generations.count_in_hour(user_id, hour)

    def count_full_regens(self, user_id: str, month: str) -> int:
        with self._db.uow() as uow:
            return uow.generations.count_full_regens_month(user_id, month)

    def credits_seed(self, user_id: str) -> str:
        with self._db.uow() as uow:
            return uow.credits.seed(user_id)


# Where a development Container is composed (named by the errors of one built without it).
DEV_COMPOSITION = "devtools.compose.dev_container (make dev, make demo, the tests)"


class Container:
    """Every dependency of the services, each built on first use.

    ``overrides`` are adapters already built; ``factories`` build an adapter on first use
    in place of this class's own recipe (``factories={"queue": lambda c: …}``), so a
    caller that composes differently (development) keeps the laziness.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        factories: Mapping[str, Callable[[Container], Any]] | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._built: dict[str, Any] = dict(overrides)
        self._factories = dict(factories or {})

    def _get(self, name: str, build: Callable[[], T]) -> T:
        if name not in self._built:
            with self._lock:
                if name not in self._built:
                    factory = self._factories.get(name)
                    self._built[name] = factory(self) if factory else build()
        value: T = self._built[name]
        return value

    def provide(self, name: str, build: Callable[[], T]) -> T:
        """The adapter called ``name``, built by ``build`` on first use (once per
        container, thread-safely) unless given as an override or a factory: for what a
        layer above the root adds (the edge's authenticator), which the root must not
        import."""
        return self._get(name, build)

    def now(self) -> datetime:
        return self.clock.now()

    def built(self, name: str) -> Any:
        """The adapter called ``name`` if it was built (or given), else None; never builds."""
        return self._built.get(name)

    def close(self) -> None:
        """Stop the local queue's threads and close pooled connections that were built."""
        for name in ("queue", "db"):
            closer = getattr(self._built.get(name), "close", None)
            if callable(closer):
                closer()

    @property
    def database_url(self) -> str:
        def build() -> str:
            if self.settings.database_url:
                return self.settings.database_url
            if self.settings.is_development:
                raise ConfigError(
                    f"DATABASE_URL: not set; embedded Postgres comes from {DEV_COMPOSITION}"
                )
            raise ConfigError("DATABASE_URL: required when APP_ENV=production")

        return self._get("database_url", build)

    @property
    def db(self) -> Database:
        def build() -> Database:
            from shared.db.database import Database

            return Database(self.database_url)

        return self._get("db", build)

    @property
    def redis(self) -> RedisPort:
        def build() -> RedisPort:
            from shared.redis import redis_from_settings

            return redis_from_settings(self.settings)

        return self._get("redis", build)

    @property
    def keys(self) -> Keys:
        def build() -> Keys:
            from shared.redis.keys import Keys

            return Keys(self.settings.redis_key_prefix)

        return self._get("keys", build)

    @property
    def enforcer(self) -> Enforcer:
        def build() -> Enforcer:
            from shared.enforcement import Enforcer
            from shared.plans import Lane

            return Enforcer(
                self.redis,
                self.keys,
                DbPlanSource(self.db, self.clock),
                DbUsageSource(self.db),
                lease_ttl_s=self.settings.lease_ttl_s,
                plan_cache_ttl_s=self.settings.plan_cache_ttl_s,
                provider_caps={lane: self.settings.provider_cap(lane) for lane in Lane},
                truth=DbTruthSource(self.db),
                clock=self.clock,
            )

        return self._get("enforcer", build)

    @property
    def queue(self) -> QueuePort:
        def build() -> QueuePort:
            from shared.queue import queue_from_settings

            return queue_from_settings(self.settings)

        return self._get("queue", build)

    @property
    def llm(self) -> LLMPort:
        def build() -> LLMPort:
            from shared.ai import AIClient, llm_from_settings
            from shared.ai.factory import fallback_from_settings

            primary = llm_from_settings(self.settings)
            secondary = fallback_from_settings(self.settings)
            if secondary is None or not isinstance(primary, AIClient):
                return primary  # no second provider (or the development writer)
            return self.with_fallback(primary, secondary)

        return self._get("llm", build)

    def with_fallback(
        self,
        primary: LLMPort,
        secondary: LLMPort,
        *,
        time_offset_ms: Callable[[], int] | None = None,
    ) -> LLMPort:
        """``primary`` behind its circuit breaker (in this container's Redis), falling back
        to ``secondary`` (``time_offset_ms`` moves the breaker's and slots' script time:
        tests)."""
        from shared.ai.fallback import FallbackLLM
        from shared.enforcement.circuit import RedisCircuit, RedisSlots
        from shared.plans import Lane

        s = self.settings
        offset = {"time_offset_ms": time_offset_ms} if time_offset_ms else {}
        circuit = RedisCircuit(
            self.redis, self.keys, primary.provider, primary.model,
            failures=s.circuit_failures, window_s=s.circuit_window_s,
            cooldown_s=s.circuit_cooldown_s, trial_ttl_s=s.max_job_runtime_s, **offset,
        )  # fmt: skip
        slots = RedisSlots(
            self.redis, self.keys, {lane: s.provider_cap(lane) for lane in Lane},
            lease_ttl_s=s.lease_ttl_s, **offset,
        )  # fmt: skip
        return FallbackLLM(primary, secondary, circuit, slots, reserve_s=s.fallback_reserve_s)

    @property
    def billing(self) -> StripeBilling:
        """Stripe checkout, portal and webhook; one ``StripeClient`` per instance."""

        def build() -> StripeBilling:
            from shared.billing.stripe_billing import StripeBilling

            return StripeBilling.from_settings(self.settings, lambda: self.db, self.clock)

        return self._get("billing", build)

    @property
    def token_ledger(self) -> TokenLedger:
        """QStash token ids already accepted (in Redis)."""

        def build() -> TokenLedger:
            from shared.queue.signing import RedisTokenLedger

            return RedisTokenLedger(self.redis, self.keys)

        return self._get("token_ledger", build)

    @property
    def signature_verifier(self) -> SignatureVerifier:
        def build() -> SignatureVerifier:
            from shared.queue.signing import DeferredTokenLedger, SignatureVerifier

            current, nxt = self.settings.effective_signing_keys
            # The ledger (and the Redis client) is built when a valid token is first
            # recorded: an unsigned or forged request to a cold worker builds neither.
            ledger = DeferredTokenLedger(lambda: self.token_ledger)
            return SignatureVerifier(current, nxt, ledger=ledger)

        return self._get("signature_verifier", build)

    def worker_deps(self, llm: LLMPort | None = None) -> WorkerDeps:
        """What ``shared.services.worker`` needs, from this container (``llm`` replaces its
        provider client: a test's or a benchmark's writer)."""
        from shared.services.worker import WorkerDeps

        return WorkerDeps(
            db=self.db,
            enforcer=self.enforcer,
            llm=llm or self.llm,
            now=self.now,
            max_job_runtime_s=self.settings.max_job_runtime_s,
            lease_ttl_s=self.settings.lease_ttl_s,
            board=self.status_board,
        )

    @property
    def status_board(self) -> StatusBoard:
        """Where status moves are published for the event streams (Redis)."""
        from shared.services.events import StatusBoard

        return self._get("status_board", lambda: StatusBoard(self.redis, self.keys))


_lock = threading.Lock()
_container: Container | None = None


def get_container() -> Container:
    """The instance-wide container (built on first request)."""
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                from shared.observability.logging import configure_logging

                settings = get_settings()
                configure_logging(settings.log_level)
                _container = Container(settings)
    return _container


def check_startup() -> None:
    """Validate this instance's configuration before it serves (raises ``ConfigError``).

    Called at import by every ``functions/`` module. When a container is already
    installed (the local server, tests) its settings were validated when it was built,
    and they, not the environment, are what requests will use.
    """
    if _container is None:
        check_configuration()


def set_container(container: Container | None) -> None:
    """Install a container (the local server, tests)."""
    global _container
    with _lock:
        _container = container
