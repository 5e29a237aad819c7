"""Lifecycle races on real Postgres and Redis (SPEC §9): a draft deleted while its
regeneration is being admitted, PATCHes with the same stale If-Match, restores at once,
and an account deleted while its job runs. Each either forces the bad interleaving with
a hook (STYLE 24) or runs N threads and counts the winners (STYLE 25)."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from devtools.compose import dev_container
from shared.api.handlers.generation import accepted_response
from shared.api.handlers.library import asset_changes
from shared.api.models import AssetPatchRequest, CreateRequest, RegenerateRequest
from shared.billing.stripe_billing import StripeBilling
from shared.bootstrap import Container
from shared.db import (
    AssetStatus,
    Database,
    DraftBusy,
    Platform,
    SubscriptionStatus,
    UnitOfWork,
    VariantContent,
)
from shared.errors import AppError, NotFound, PreconditionFailed
from shared.plans import PlanName
from shared.queue import JobPayload
from shared.services import account, drafts, generation, library, lifecycle, worker
from tests.support.worker_env import CapturingQueue, worker_settings

THREADS = 8


@pytest.fixture(scope="module")
def container(database_url: str, redis_url: str, run_prefix: str) -> Iterator[Container]:
    settings = worker_settings(
        {
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"{run_prefix}lr",
            "QUEUE_BACKEND": "local",
            "AI_PROVIDER": "offline",
        }
    )
    c = dev_container(settings, queue=CapturingQueue())
    yield c
    c.close()


def _gen_deps(c: Container, db: Any = None) -> generation.GenerationDeps:
    return generation.GenerationDeps(
        db=db or c.db, enforcer=c.enforcer, queue=c.queue, now=c.now,
        provider=c.llm.provider, model=c.llm.model,
    )  # fmt: skip


def _worker_deps(c: Container, llm: Any = None) -> worker.WorkerDeps:
    return c.worker_deps(llm)


def _pro_user(c: Container) -> str:
    user_id = f"u-{secrets.token_hex(6)}"
    with c.db.uow() as uow:
        uow.users.ensure(user_id)
        uow.subscriptions.upsert(user_id, PlanName.PRO, SubscriptionStatus.ACTIVE)
        uow.commit()
    return user_id


def _job(c: Container, generation_id: str) -> JobPayload:
    queue = c.queue
    assert isinstance(queue, CapturingQueue)
    return queue.jobs[generation_id]


def _create(user_id: str, body: dict[str, Any], request_id: str) -> generation.CreateGeneration:
    req = CreateRequest.model_validate(body)
    return generation.CreateGeneration(
        user_id=user_id, brief=req.brief, platform=req.platform, variants=req.variants,
        title=req.title, tone=req.tone, duration_seconds=req.duration_seconds,
        language=req.language, body=body, idem_key=None, request_id=request_id,
    )  # fmt: skip


def _finished_draft(c: Container, user_id: str) -> uuid.UUID:
    """A draft whose create has run to success (no generation in flight)."""
    body = {"brief": "water", "platform": "tiktok"}
    response, _ = generation.create(
        _gen_deps(c), _create(user_id, body, f"req-{secrets.token_hex(4)}"), accepted_response
    )
    import json

    accepted = json.loads(response.body)
    job = _job(c, accepted["generation_id"])
    assert worker.run_job(_worker_deps(c), job) is worker.JobResult.SUCCEEDED
    return uuid.UUID(accepted["draft_id"])


def _regenerate(c: Container, user_id: str, draft_id: uuid.UUID, db: Any = None) -> int:
    body = {"draft_id": str(draft_id), "mode": "full"}
    req = RegenerateRequest.model_validate(body)
    cmd = generation.RegenerateDraft(
        user_id=user_id, draft_id=uuid.UUID(req.draft_id), mode=req.mode,
        variant_id=req.variant_id, fields=None, instructions=req.instructions,
        variants=req.variants, body=body, idem_key=None,
        request_id=f"req-{secrets.token_hex(4)}",
    )  # fmt: skip
    response, _ = generation.regenerate(_gen_deps(c, db), cmd, accepted_response)
    return response.status


def _usage(c: Container, user_id: str) -> tuple[int, int]:
    snap = c.enforcer.usage(user_id, c.now())
    return snap.generations.used, snap.concurrency.used


def _count(c: Container, sql: str, **params: Any) -> int:
    with c.db.uow() as uow:
        return int(uow._session.run(sql, **params)[0][0])


class _HookedDb:
    """The real database; ``hook`` runs right before the ``nth`` unit of work opens
    (transactional or autocommit)."""

    def __init__(self, real: Database, nth: int, hook: Callable[[], None]) -> None:
        self._real, self._nth, self._hook, self._calls = real, nth, hook, 0

    def _next(self) -> None:
        self._calls += 1
        if self._calls == self._nth:
            self._hook()

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        self._next()
        with self._real.uow() as uow:
            yield uow

    @contextmanager
    def autocommit(self) -> Iterator[UnitOfWork]:
        self._next()
        with self._real.autocommit() as uow:
            yield uow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# ---- deleting a draft while its regeneration is admitted ----------------------------------


def test_draft_deleted_after_the_regen_check_undoes_the_admission(container: Container) -> None:
    """The worst interleaving, forced: the regeneration has checked the draft (live, idle)
    and been admitted; the delete commits; then the regeneration's transaction runs. It
    must answer 404 and give everything back, not queue a job on a deleted draft."""
    c = container
    user_id = _pro_user(c)
    draft_id = _finished_draft(c, user_id)
    before = _usage(c, user_id)

    def delete_now() -> None:
        drafts.delete_draft(c.db, user_id=user_id, draft_id=draft_id, now=c.now())

    # Unit of work 1: _resolve_regen's checks; 2: the insert (one statement).
    with pytest.raises(NotFound):
        _regenerate(c, user_id, draft_id, db=_HookedDb(c.db, 2, delete_now))

    assert _usage(c, user_id) == before  # monthly unit refunded, both slots released
    gens = "SELECT count(*) FROM generations WHERE draft_id = CAST(:d AS uuid)"
    assert _count(c, gens, d=str(draft_id)) == 1  # only the original create


def test_delete_and_regenerate_at_once_never_both_win(container: Container) -> None:
    """N rounds of a delete and a regeneration released together. The queue holds the job,
    so a regeneration that wins leaves a queued generation and the delete must answer 409;
    a delete that wins makes the regeneration 404. Exactly one wins, every time."""
    c = container
    user_id = _pro_user(c)
    for _ in range(6):
        draft_id = _finished_draft(c, user_id)
        barrier = threading.Barrier(2)
        outcome: dict[str, Any] = {}

        def regen(d: uuid.UUID = draft_id, out: dict[str, Any] = outcome) -> None:
            barrier.wait()
            try:
                out["regen"] = _regenerate(c, user_id, d)
            except AppError as exc:
                out["regen"] = exc.status

        def delete(d: uuid.UUID = draft_id, out: dict[str, Any] = outcome) -> None:
            barrier.wait()
            try:
                drafts.delete_draft(c.db, user_id=user_id, draft_id=d, now=c.now())
                out["delete"] = 204
            except (NotFound, DraftBusy) as exc:
                out["delete"] = exc.status

        threads = [threading.Thread(target=regen), threading.Thread(target=delete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert outcome in ({"regen": 202, "delete": 409}, {"regen": 404, "delete": 204}), outcome
        deleted_and_busy = (
            "SELECT count(*) FROM generations g JOIN drafts d ON d.id = g.draft_id "
            "WHERE d.id = CAST(:d AS uuid) AND d.deleted_at IS NOT NULL "
            "AND g.status IN ('queued', 'running')"
        )
        assert _count(c, deleted_and_busy, d=str(draft_id)) == 0
        if outcome["regen"] == 202:  # let the queued job finish so the user's slot frees
            queue = c.queue
            assert isinstance(queue, CapturingQueue)
            for job in list(queue.jobs.values()):
                if job.user_id == user_id:
                    worker.run_job(_worker_deps(c), job)
    assert _usage(c, user_id)[1] == 0


# ---- assets: stale If-Match, restores at once ------------------------------------------


def _asset(c: Container, user_id: str) -> uuid.UUID:
    with c.db.uow() as uow:
        uow.users.touch(user_id)
        asset = uow.assets.create(
            user_id, title="t", platform=Platform.TIKTOK, tags=(), status=AssetStatus.READY,
            content=VariantContent("h", "s", "c", ()), source_draft_id=None,
            source_variant_id=None, idempotency_key=None,
        )  # fmt: skip
        uow.commit()
    return asset.id


def test_patches_with_the_same_if_match_exactly_one_wins(container: Container) -> None:
    c = container
    user_id = f"u-{secrets.token_hex(6)}"
    for _ in range(10):  # the read-check-write window is short: give it many chances
        asset_id = _asset(c, user_id)
        barrier = threading.Barrier(THREADS)

        def patch(i: int, a: uuid.UUID = asset_id, b: threading.Barrier = barrier) -> str:
            req = AssetPatchRequest.model_validate({"title": f"title {i}"})
            b.wait()
            try:
                library.update_asset(c.db, user_id=user_id, asset_id=a,
                                     changes=asset_changes(req), expected_version={1})  # fmt: skip
                return "ok"
            except PreconditionFailed:
                return "412"

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(patch, range(THREADS)))
        assert sorted(results) == ["412"] * (THREADS - 1) + ["ok"]
        assert library.get_asset(c.db, user_id=user_id, asset_id=asset_id).version == 2


def test_restores_at_once_all_answer_and_change_it_once(container: Container) -> None:
    c = container
    user_id = f"u-{secrets.token_hex(6)}"
    asset_id = _asset(c, user_id)
    library.delete_asset(c.db, user_id=user_id, asset_id=asset_id, now=c.now())
    barrier = threading.Barrier(THREADS)

    def restore(_: int) -> int:
        barrier.wait()
        return library.restore_asset(c.db, user_id=user_id, asset_id=asset_id, now=c.now()).version

    with ThreadPoolExecutor(THREADS) as pool:
        versions = list(pool.map(restore, range(THREADS)))
    assert versions == [2] * THREADS  # every caller gets the asset; one version bump
    asset = library.get_asset(c.db, user_id=user_id, asset_id=asset_id)
    assert asset.deleted_at is None
    assert asset.version == 2


# ---- account deletion while a job runs ---------------------------------------------------


class _LlmWithHook:
    """The real (offline) writer; ``during`` runs while it is "thinking"."""

    def __init__(self, real: Any, during: Callable[[], None]) -> None:
        self._real, self._during = real, during
        self.provider, self.model = real.provider, real.model

    def generate(self, job: Any, *, deadline: float) -> Any:
        self._during()
        return self._real.generate(job, deadline=deadline)


def _user_keys(c: Container, user_id: str) -> list[str]:
    client = c.redis._client  # type: ignore[attr-defined]
    found = client.scan_iter(match=f"{c.settings.redis_key_prefix}:*{user_id}*", count=1000)
    return sorted(k.decode() if isinstance(k, bytes) else k for k in found)


def test_account_deleted_while_its_job_runs_discards_the_result(container: Container) -> None:
    c = container
    user_id = _pro_user(c)
    body = {"brief": "water", "platform": "tiktok", "variants": 2}
    response, _ = generation.create(
        _gen_deps(c), _create(user_id, body, "req-acct"), accepted_response
    )
    import json

    job = _job(c, json.loads(response.body)["generation_id"])
    assert _usage(c, user_id) == (1, 1)
    deps = account.AccountDeps(
        db=c.db, enforcer=c.enforcer, now=c.now,
        billing=StripeBilling.from_settings(c.settings, lambda: c.db, c.clock),
    )  # fmt: skip
    deleted: list[account.AccountDeletion] = []

    result = worker.run_job(
        _worker_deps(c, _LlmWithHook(c.llm, lambda: deleted.append(
            account.delete_account(deps, user_id)))),
    job)  # fmt: skip

    assert result is worker.JobResult.ALREADY_TERMINAL
    assert deleted
    assert deleted[0].existed
    for table in ("drafts", "generations", "assets"):
        assert _count(c, f"SELECT count(*) FROM {table} WHERE owner_id = :u", u=user_id) == 0
    gid = job.generation_id
    variants = "SELECT count(*) FROM variants WHERE generation_id = CAST(:g AS uuid)"
    assert _count(c, variants, g=gid) == 0
    assert _count(c, "SELECT count(*) FROM usage_ledger WHERE owner_id = :u", u=user_id) == 0
    assert _count(c, "SELECT count(*) FROM users WHERE id = :u", u=user_id) == 0
    # Leases released (user and provider semaphores), counters and plan cache gone.
    assert _user_keys(c, user_id) == []
    assert c.redis.get(c.keys.lease(gid)) is None
    provider_key = c.keys.provider(c.llm.provider, c.llm.model, "interactive")
    members = c.redis._client.zrange(provider_key, 0, -1)  # type: ignore[attr-defined]
    assert gid.encode() not in members
    assert gid not in members
    # A redelivery finds nothing and re-creates nothing.
    assert worker.run_job(_worker_deps(c), job) is worker.JobResult.UNKNOWN
    assert _user_keys(c, user_id) == []
    assert _count(c, "SELECT count(*) FROM users WHERE id = :u", u=user_id) == 0


# ---- purge: the month guard --------------------------------------------------------------


def test_purge_keeps_a_draft_charged_this_month_until_the_month_ends(
    container: Container,
) -> None:
    c = container
    user_id = _pro_user(c)
    draft_id = _finished_draft(c, user_id)
    now = c.now()
    drafts.delete_draft(c.db, user_id=user_id, draft_id=draft_id, now=now - timedelta(days=40))
    exists = "SELECT count(*) FROM drafts WHERE id = CAST(:d AS uuid)"
    # Its generation is charged to this month: a purge now would lower the Postgres
    # count the monthly counter is re-seeded from.
    lifecycle.purge_deleted(c.db, now)
    assert _count(c, exists, d=str(draft_id)) == 1
    lifecycle.purge_deleted(c.db, now + timedelta(days=40))  # another month
    assert _count(c, exists, d=str(draft_id)) == 0
    # The ledger row outlives the purge (accounting), generation and variants do not.
    assert _count(c, "SELECT count(*) FROM usage_ledger WHERE owner_id = :u", u=user_id) == 1
    assert _count(c, "SELECT count(*) FROM generations WHERE owner_id = :u", u=user_id) == 0


def test_purge_forgets_cancel_keys_a_retention_after_their_last_use(
    container: Container,
) -> None:
    c = container
    user_id = _pro_user(c)
    old, reused, fresh = "cancel-old", "cancel-reused", "cancel-fresh"
    with c.db.uow() as uow:
        for key in (old, reused, fresh):
            uow.generations.remember_cancel_key(user_id, key)
        uow.commit()
    keys = "SELECT idempotency_key FROM cancel_keys WHERE owner_id = :u ORDER BY 1"
    aged = "UPDATE cancel_keys SET created_at = :t WHERE owner_id = :u AND idempotency_key = :k"
    now = c.now()
    with c.db.uow() as uow:
        for key in (old, reused):
            uow._session.run(
                aged, t=now - lifecycle.RETENTION - timedelta(hours=1), u=user_id, k=key
            )
        uow.commit()
    # Used again today: its replay record is new, so the key must outlive this purge.
    with c.db.uow() as uow:
        uow.generations.remember_cancel_key(user_id, reused)
        uow.commit()

    report = lifecycle.purge_deleted(c.db, now)

    assert report.cancel_keys >= 1
    with c.db.uow() as uow:
        assert [r[0] for r in uow._session.run(keys, u=user_id)] == [fresh, reused]
