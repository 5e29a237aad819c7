"""3. ``POST /v1/create`` throughput and latency through the local server, 1 and 8 clients.

Real Postgres and Redis; the queue records jobs and never delivers them, so no worker
competes. Every user makes at most ``PER_USER`` creates (Pro allows 5 concurrent jobs
and 120 per hour), is granted Pro through the repositories and is warmed (plan cached,
counters seeded) before the clock starts. Leases of the recorded jobs are released
between phases.

The bound, measured in the same run with the same thread count and the same number of
operations: the admission alone (``Enforcer.admit``, one Lua call) plus the DB
transaction alone (user ensure + draft insert + generation insert + commit through
``Database.uow``) — create minus HTTP, auth, JSON, routing and the enqueue.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.env import BenchEnv
from bench.report import Figure, Report, pct
from bench.roundtrips import BRIEF
from shared.db import GenerationKind, Platform
from shared.enforcement.scripts.admission import Admitted
from shared.queue.jobs import JobPayload

__all__ = ["run"]

SECTION = "3. create"
PER_USER = 5


@dataclass
class Phase:
    threads: int
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    parts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ops(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ops / self.wall_s if self.wall_s else float("nan")


Op = Callable[[str], None]


def _run_phase(
    threads: int, work: Sequence[list[str]], setup: Callable[[], tuple[Op, Callable[[], None]]]
) -> Phase:
    """Each thread runs ``op(user)`` for its users, all starting together."""
    phase = Phase(threads)
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker(users: list[str]) -> None:
        op, close = setup()
        lat: list[float] = []
        errs: list[str] = []
        try:
            barrier.wait()
            for user in users:
                t0 = time.perf_counter()
                try:
                    op(user)
                except Exception as exc:
                    errs.append(repr(exc)[:300])
                    continue
                lat.append(time.perf_counter() - t0)
        finally:
            close()
            with lock:
                phase.latencies.extend(lat)
                phase.errors.extend(errs)

    pool = [threading.Thread(target=worker, args=(work[i],)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    phase.wall_s = time.perf_counter() - t0
    return phase


def _work(env: BenchEnv, threads: int, ops: int, tag: str) -> list[list[str]]:
    per_thread = max(1, ops // threads)
    users_per_thread = -(-per_thread // PER_USER)
    users = env.pro_users(users_per_thread * threads, tag)
    work = []
    for i in range(threads):
        mine = users[i * users_per_thread : (i + 1) * users_per_thread]
        work.append([u for u in mine for _ in range(PER_USER)][:per_thread])
    return work


def _http_phase(env: BenchEnv, threads: int, ops: int) -> Phase:
    tokens: dict[str, str] = {}
    work = _work(env, threads, ops, f"c{threads}")
    for users in work:
        for u in users:
            tokens.setdefault(u, env.token(u))

    def setup() -> tuple[Op, Callable[[], None]]:
        client = httpx.Client(base_url=env.server.url, timeout=30)
        client.get("/healthz").raise_for_status()  # connect before the clock starts

        def op(user: str) -> None:
            r = client.post(
                "/v1/create", json=BRIEF, headers={"Authorization": f"Bearer {tokens[user]}"}
            )
            if r.status_code != 202:
                raise RuntimeError(f"{r.status_code} {r.text[:200]}")

        return op, client.close

    phase = _run_phase(threads, work, setup)
    env.release_jobs(env.queue.drain())
    return phase


def _bound_phase(env: BenchEnv, threads: int, ops: int) -> Phase:
    c = env.container
    enforcer, db = c.enforcer, c.db
    work = _work(env, threads, ops, f"b{threads}")
    admit_s: list[float] = []
    tx_s: list[float] = []
    leases: list[tuple[str, str]] = []
    lock = threading.Lock()

    def setup() -> tuple[Op, Callable[[], None]]:
        def op(user: str) -> None:
            req = env.admission_request(user)
            t0 = time.perf_counter()
            admission = enforcer.admit(req)
            t1 = time.perf_counter()
            if not isinstance(admission, Admitted):
                raise RuntimeError(f"refused: {admission}")
            ticket = admission.ticket
            with db.uow() as uow:
                uow.users.ensure(user)
                draft = uow.drafts.create(
                    user, title=None, brief=BRIEF["brief"], platform=Platform.TIKTOK,
                    tone=None, duration_seconds=30, language="en",
                )  # fmt: skip
                uow.generations.create(
                    id=uuid.UUID(req.lease_id), owner_id=user, draft_id=draft.id,
                    kind=GenerationKind.CREATE, requested_variants=1, plan=ticket.plan,
                    period_month=ticket.charge.month, period_hour=req.now.strftime("%Y%m%d%H"),
                    provider=req.provider, model=req.model, lane=req.lane.value,
                    request_id=f"bench-{req.lease_id}", params={},
                )  # fmt: skip
                uow.commit()
            t2 = time.perf_counter()
            with lock:
                admit_s.append(t1 - t0)
                tx_s.append(t2 - t1)
                leases.append((req.lease_id, user))

        return op, lambda: None

    phase = _run_phase(threads, work, setup)
    phase.parts = {"admit": admit_s, "tx": tx_s}
    env.release_jobs(
        JobPayload(generation_id=g, user_id=u, lease_id=g, request_id="bench") for g, u in leases
    )
    return phase


def run(env: BenchEnv, report: Report, ops_1: int, ops_8: int) -> dict[str, Any]:
    # Warm the HTTP path (imports, pooled DB/Redis connections) outside the clock.
    _http_phase(env, 2, 10)
    results: dict[str, Any] = {}
    for threads, ops in ((1, ops_1), (8, ops_8)):
        bound = _bound_phase(env, threads, ops)
        http = _http_phase(env, threads, ops)
        errors = http.errors + bound.errors
        if errors:
            raise RuntimeError(f"create benchmark errors ({len(errors)}): {errors[:3]}")
        label = f"admit + DB tx, {threads} thr"
        report.add(
            Figure(SECTION, f"POST /v1/create throughput, {threads} client(s), n={http.ops}",
                   http.rate, "req/s", bound.rate, label)
        )  # fmt: skip
        report.add(
            Figure(SECTION, f"POST /v1/create latency p50 / p99, {threads} client(s)",
                   pct(http.latencies, 50) * 1e3, "ms", pct(bound.latencies, 50) * 1e3, label,
                   value2=pct(http.latencies, 99) * 1e3, bound2=pct(bound.latencies, 99) * 1e3)
        )  # fmt: skip
        admit, tx = bound.parts["admit"], bound.parts["tx"]
        report.add(
            Figure(SECTION, f"  bound parts p50: admit / DB tx, {threads} thr",
                   pct(admit, 50) * 1e3, "ms", None, "info", value2=pct(tx, 50) * 1e3)
        )  # fmt: skip
        results[f"{threads}"] = {
            "http": {
                "ops": http.ops,
                "wall_s": http.wall_s,
                "req_per_s": http.rate,
                "p50_ms": pct(http.latencies, 50) * 1e3,
                "p99_ms": pct(http.latencies, 99) * 1e3,
            },
            "bound": {
                "ops": bound.ops,
                "wall_s": bound.wall_s,
                "ops_per_s": bound.rate,
                "p50_ms": pct(bound.latencies, 50) * 1e3,
                "p99_ms": pct(bound.latencies, 99) * 1e3,
                "admit_p50_ms": pct(admit, 50) * 1e3,
                "admit_p99_ms": pct(admit, 99) * 1e3,
                "tx_p50_ms": pct(tx, 50) * 1e3,
                "tx_p99_ms": pct(tx, 99) * 1e3,
            },
        }
    report.extra["create"] = results
    return results
