"""2. ``Enforcer.admit`` throughput (single thread) vs trivial EVALSHA on the same Redis.

Each admission is followed by ``abort`` (refund + release, not timed) so concurrency and
the monthly pool never refuse; the hourly burst is not refunded, so every user admits at
most ``PER_USER`` times. The bound is the same number of EVALSHA calls of ``return 1``
through redis-py with the adapter's connection settings. The two are measured in
alternating blocks so drift (other load on the machine) hits both alike.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bench.env import BenchEnv
from bench.report import Figure, Report, pct
from shared.enforcement.scripts.admission import Admitted

__all__ = ["run", "trivial_evalsha_client"]

SECTION = "2. admission"
PER_USER = 100  # below Pro's 120/hour burst (the warm-up took one)
ROUNDS = 4


def trivial_evalsha_client(url: str) -> tuple[redis.Redis, str]:
    """redis-py configured like ``TcpRedis.from_url`` and the SHA of ``return 1``."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=32,
        timeout=2.0,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )
    client = redis.Redis(connection_pool=pool)
    sha = str(client.script_load("return 1"))
    return client, sha


def run(env: BenchEnv, report: Report, n: int) -> dict[str, Any]:
    enforcer = env.container.enforcer
    users = env.pro_users(max(1, -(-n // PER_USER)), "adm")
    client, sha = trivial_evalsha_client(env.redis_url)
    admit_s: list[float] = []
    eval_s: list[float] = []
    slots = [u for u in users for _ in range(PER_USER)][:n]
    per_round = -(-n // ROUNDS)
    try:
        for _ in range(20):  # warm both paths
            client.evalsha(sha, 0)
        for r in range(ROUNDS):
            for user in slots[r * per_round : (r + 1) * per_round]:
                req = env.admission_request(user)
                t0 = time.perf_counter()
                admission = enforcer.admit(req)
                admit_s.append(time.perf_counter() - t0)
                if not isinstance(admission, Admitted):
                    raise RuntimeError(f"admission refused during the benchmark: {admission}")
                enforcer.abort(admission.ticket)
            for _ in range(min(per_round, n - r * per_round)):
                t0 = time.perf_counter()
                client.evalsha(sha, 0)
                eval_s.append(time.perf_counter() - t0)
    finally:
        client.close()

    admit_rate = len(admit_s) / sum(admit_s)
    eval_rate = len(eval_s) / sum(eval_s)
    report.add(
        Figure(SECTION, f"Enforcer.admit throughput (1 thread, n={len(admit_s)})",
               admit_rate, "admits/s", eval_rate, "EVALSHA return 1")
    )  # fmt: skip
    report.add(
        Figure(SECTION, "Enforcer.admit latency p50 / p99",
               pct(admit_s, 50) * 1e3, "ms", pct(eval_s, 50) * 1e3, "EVALSHA return 1",
               value2=pct(admit_s, 99) * 1e3, bound2=pct(eval_s, 99) * 1e3)
    )  # fmt: skip
    result = {
        "n": len(admit_s),
        "admit_per_s": admit_rate,
        "evalsha_per_s": eval_rate,
        "admit_p50_ms": pct(admit_s, 50) * 1e3,
        "evalsha_p50_ms": pct(eval_s, 50) * 1e3,
    }
    report.extra["admission"] = result
    return result
