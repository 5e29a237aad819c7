"""1. Redis round trips (and Postgres statements) per admission, create, regenerate, job.

Counted as ``container.redis.round_trips`` deltas around the real code path, with the
plan already cached and the counters seeded (a warm-up request of each kind first).
Postgres statements are counted with ``count_pg_statements`` (BEGIN/COMMIT/ROLLBACK
included: each is one network round trip too), which also times pg8000's client-side
rewrite of ``:name`` parameters (``to_statement``), shown as a share of the request.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench.env import BenchEnv, count_pg_statements
from bench.report import Figure, Report
from devtools.offline_writer import OfflineWriter
from shared.enforcement.scripts.admission import Admitted
from shared.services.worker import JobResult, WorkerDeps, run_job

__all__ = ["BRIEF", "Counted", "measure", "run", "worker_deps"]

SECTION = "1. round trips"
BRIEF = {"brief": "Three ways to brew better coffee at home", "platform": "tiktok"}


@dataclass(frozen=True)
class Counted:
    redis_trips: int
    pg_statements: int
    rewrite_s: float
    elapsed_s: float
    result: Any = None


def worker_deps(env: BenchEnv) -> WorkerDeps:
    return env.container.worker_deps(OfflineWriter(latency_s=0.0))


def measure(env: BenchEnv, fn: Callable[[], Any]) -> Counted:
    """Round trips, statements and timings of ``fn``; nothing else may run meanwhile."""
    redis = env.container.redis
    with count_pg_statements() as pg:
        before = redis.round_trips
        t0 = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - t0
        trips = redis.round_trips - before
    return Counted(trips, pg.statements, pg.rewrite_s, elapsed, result)


def _steady(samples: list[Counted]) -> Counted:
    """The steady-state count of repeated samples: the fewest round trips.

    A sample can pay one extra trip for reasons outside the path (a NOSCRIPT after
    someone's ``SCRIPT FLUSH`` on a shared Redis, an hour rolling over mid-run); every
    sample is kept in results.json.
    """
    best = min(samples, key=lambda m: (m.redis_trips, m.pg_statements))
    elapsed = statistics.median(m.elapsed_s for m in samples)
    rewrite = statistics.median(m.rewrite_s for m in samples)
    return Counted(best.redis_trips, best.pg_statements, rewrite, elapsed)


def run(env: BenchEnv, report: Report, repeats: int = 3) -> dict[str, Counted]:
    c = env.container
    user = env.pro_users(1, "rt")[0]
    headers = {"Authorization": f"Bearer {env.token(user)}"}
    samples: dict[str, list[Counted]] = {}

    def admit() -> Any:
        admission = c.enforcer.admit(env.admission_request(user))
        assert isinstance(admission, Admitted), admission
        return admission

    for _ in range(repeats):
        counted = measure(env, admit)
        c.enforcer.abort(counted.result.ticket)
        samples.setdefault("admission", []).append(counted)

    deps = worker_deps(env)
    with httpx.Client(base_url=env.server.url, timeout=30) as client:

        def post(path: str, body: dict[str, Any], **extra: str) -> dict[str, Any]:
            r = client.post(path, json=body, headers={**headers, **extra})
            if r.status_code != 202:
                raise RuntimeError(f"{path}: {r.status_code} {r.text}")
            data: dict[str, Any] = r.json()
            return data

        def keyed() -> dict[str, Any]:
            return post("/v1/create", BRIEF, **{"Idempotency-Key": uuid.uuid4().hex})

        def run_jobs(count: bool) -> None:
            # Every queued job to completion; counted ones once warm (the first is not).
            for i, job in enumerate(env.queue.drain()):
                if count and i:
                    counted = measure(env, lambda j=job: run_job(deps, j))  # type: ignore[misc]
                    assert counted.result is JobResult.SUCCEEDED, counted.result
                    samples.setdefault("worker job", []).append(counted)
                else:
                    assert run_job(deps, job) is JobResult.SUCCEEDED

        post("/v1/create", BRIEF)  # warm: imports, routes, pooled connections, scripts
        keyed()
        for _ in range(repeats):
            samples.setdefault("create", []).append(measure(env, lambda: post("/v1/create", BRIEF)))
        run_jobs(count=False)  # the user holds at most 5 leases
        for _ in range(repeats):
            samples.setdefault("create + Idempotency-Key", []).append(measure(env, keyed))
        run_jobs(count=False)
        for _ in range(repeats + 1):
            post("/v1/create", BRIEF)
        run_jobs(count=True)

        variant_of = _drafts_with_variants(env, user)

        def full(d: str) -> dict[str, Any]:
            return post("/v1/regenerate", {"draft_id": d, "mode": "full"})

        def targeted(d: str) -> dict[str, Any]:
            body = {"draft_id": d, "mode": "targeted", "variant_id": variant_of[d]}
            return post("/v1/regenerate", body)

        drafts = list(variant_of)
        full(drafts.pop())  # seeds the full-regeneration counter of the month
        targeted(drafts.pop())
        env.release_jobs(env.queue.drain())
        for name, fn in (("regenerate (full)", full), ("regenerate (targeted)", targeted)):
            for _ in range(repeats):
                d = drafts.pop()
                samples.setdefault(name, []).append(measure(env, lambda f=fn, d=d: f(d)))  # type: ignore[misc]
            env.release_jobs(env.queue.drain())

    counts = {name: _steady(s) for name, s in samples.items()}
    _report(report, counts)
    report.extra["round_trips"] = {
        name: [
            {
                "redis": m.redis_trips,
                "postgres_statements": m.pg_statements,
                "pg8000_rewrite_ms": m.rewrite_s * 1e3,
                "elapsed_ms": m.elapsed_s * 1e3,
            }
            for m in s
        ]
        for name, s in samples.items()
    }
    return counts


def _drafts_with_variants(env: BenchEnv, user: str) -> dict[str, str]:
    """Draft id -> first variant id, for the user's drafts whose create succeeded."""
    with env.container.db.uow() as uow:
        rows = uow._session.run(
            "SELECT DISTINCT ON (v.draft_id) v.draft_id, v.id FROM variants v "
            "JOIN drafts d ON d.id = v.draft_id WHERE d.owner_id = :u "
            "ORDER BY v.draft_id, v.index",
            u=user,
        )
    return {str(r[0]): str(r[1]) for r in rows}


def _report(report: Report, counts: dict[str, Counted]) -> None:
    goals = {
        "admission": (1, "goal"),
        "create": (3, "goal"),
        "create + Idempotency-Key": (3, "goal"),
        "regenerate (full)": (3, "goal"),
        "regenerate (targeted)": (3, "goal"),
        "worker job": (2, "min: refresh + release"),
    }
    for name, m in counts.items():
        goal, label = goals[name]
        report.add(
            Figure(SECTION, f"Redis round trips / {name}", m.redis_trips, "", goal, label,
                   goal=True)
        )  # fmt: skip
    for name, m in counts.items():
        if name == "admission":
            continue
        report.add(
            Figure(SECTION, f"Postgres statements / {name}", m.pg_statements, "", None, "info")
        )
    for name in ("create", "worker job"):
        m = counts[name]
        report.add(
            Figure(SECTION, f"  pg8000 :param rewrite CPU / {name}", m.rewrite_s * 1e3, "ms",
                   m.elapsed_s * 1e3, f"whole {name}")
        )  # fmt: skip
