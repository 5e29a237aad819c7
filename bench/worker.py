"""4. Worker overhead per job: ``run_job`` over N queued generations, zero-latency writer.

The generations are created through the real create service (recording queue, Pro
users, at most five each). ``run_job`` then runs each job once, in order, with
``OfflineWriter(latency_s=0)``: what is left is the worker's own cost (Postgres, Redis,
the offline writer's CPU). The floor beside it is the job's network round trips priced
at the run's trivial-call latency: (Redis trips × p50 EVALSHA ``return 1``) +
(Postgres statements × p50 ``SELECT 1`` on a raw pg8000 connection).
"""

from __future__ import annotations

import time
from typing import Any

from bench.admission import trivial_evalsha_client
from bench.env import BenchEnv
from bench.report import Figure, Report, pct
from bench.roundtrips import BRIEF, measure, worker_deps
from shared.api.handlers.generation import accepted_response
from shared.api.models import CreateRequest
from shared.db.connection import connect
from shared.services import generation as service
from shared.services.worker import JobResult, run_job

__all__ = ["floor_latencies", "run"]

SECTION = "4. worker"
PER_USER = 5


def floor_latencies(env: BenchEnv, n: int = 300) -> tuple[float, float]:
    """(p50 EVALSHA ``return 1``, p50 ``SELECT 1``) in seconds, measured now."""
    client, sha = trivial_evalsha_client(env.redis_url)
    conn = connect(env.database_url)
    try:
        redis_s, pg_s = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            client.evalsha(sha, 0)
            t1 = time.perf_counter()
            conn.run("SELECT 1")
            t2 = time.perf_counter()
            redis_s.append(t1 - t0)
            pg_s.append(t2 - t1)
    finally:
        client.close()
        conn.close()
    return pct(redis_s, 50), pct(pg_s, 50)


def _queue_jobs(env: BenchEnv, n: int) -> list[Any]:
    c = env.container
    deps = service.GenerationDeps(
        db=c.db, enforcer=c.enforcer, queue=env.queue, now=c.now,
        provider=env.provider, model=env.model,
    )  # fmt: skip
    req = CreateRequest.model_validate(BRIEF)
    users = env.pro_users(-(-n // PER_USER), "wk")
    env.queue.drain()
    for i in range(n):
        cmd = service.CreateGeneration(
            user_id=users[i // PER_USER], brief=req.brief, platform=req.platform,
            variants=req.variants, title=req.title, tone=req.tone,
            duration_seconds=req.duration_seconds, language=req.language, body=BRIEF,
            idem_key=None, request_id=f"bench-wk-{i}",
        )  # fmt: skip
        service.create(deps, cmd, accepted_response)
    return env.queue.drain()


def run(env: BenchEnv, report: Report, n: int) -> dict[str, Any]:
    deps = worker_deps(env)
    jobs = _queue_jobs(env, n + 1)
    counted = measure(env, lambda: run_job(deps, jobs[0]))  # also warms
    assert counted.result is JobResult.SUCCEEDED, counted.result
    trips, stmts = counted.redis_trips, counted.pg_statements
    jobs = jobs[1:]
    per_job: list[float] = []
    t_start = time.perf_counter()
    for job in jobs:
        t0 = time.perf_counter()
        result = run_job(deps, job)
        per_job.append(time.perf_counter() - t0)
        if result is not JobResult.SUCCEEDED:
            raise RuntimeError(f"job {job.generation_id}: {result}")
    wall = time.perf_counter() - t_start
    redis_p50, pg_p50 = floor_latencies(env)
    floor_s = trips * redis_p50 + stmts * pg_p50
    rate = len(jobs) / wall
    floor_label = f"{trips} Redis + {stmts} PG trips at trivial p50"
    report.add(
        Figure(SECTION, f"run_job throughput (latency 0, n={len(jobs)})", rate, "jobs/s",
               1 / floor_s, floor_label)
    )  # fmt: skip
    report.add(
        Figure(SECTION, "run_job ms/job p50 / p99", pct(per_job, 50) * 1e3, "ms",
               floor_s * 1e3, floor_label, value2=pct(per_job, 99) * 1e3)
    )  # fmt: skip
    out = {
        "n": len(jobs),
        "jobs_per_s": rate,
        "ms_per_job_mean": wall / len(jobs) * 1e3,
        "p50_ms": pct(per_job, 50) * 1e3,
        "p99_ms": pct(per_job, 99) * 1e3,
        "redis_trips_per_job": trips,
        "pg_statements_per_job": stmts,
        "evalsha_p50_ms": redis_p50 * 1e3,
        "select1_p50_ms": pg_p50 * 1e3,
        "floor_ms": floor_s * 1e3,
    }
    report.extra["worker"] = out
    return out
