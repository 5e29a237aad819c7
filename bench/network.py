"""7. Network distance: Postgres and Redis reached through a proxy adding 1 ms each way.

In production every round trip crosses a network (Cloud SQL through the VPC connector,
Upstash over HTTPS), so round trips, not CPU, set what a creator waits for. Here a
second container reaches the same servers through ``devtools.wire_proxy`` (a TCP
proxy that counts round trips and forwards each chunk ``BENCH_NET_DELAY_MS`` after it
arrived, both ways; ``tc netem`` is not available in this kernel) and the local server
serves it. For create, regenerate (full), a worker job (``run_job``, offline writer at
zero latency) and a library page (unfiltered, 20 items) it prints p50/p99 beside the
floor: the operation's round trips (counted on the wire, fewest of its samples) × the
measured p50 of one trivial round trip through the proxy (``SELECT 1`` for Postgres,
``PING`` for Redis). The proxy's own added delay (proxied minus direct p50 of the same
trivial call) is printed too, measured in the same run.

CPU per request is measured without the proxy (the server's work does not change with
distance): process CPU time over the requests minus the client thread's own, per
request. With a function instance serving several requests at once, that is its
capacity: 1 / CPU requests per second per vCPU.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlparse

import httpx
import redis

from bench.env import PROVIDER_CAP, BenchEnv
from bench.report import Figure, Report, pct
from bench.roundtrips import BRIEF, worker_deps
from devtools.compose import dev_container
from devtools.wire_proxy import WireProxy
from shared.bootstrap import Container, set_container
from shared.config import load_settings
from shared.db.connection import connect
from shared.services.worker import JobResult, run_job

__all__ = ["run"]

SECTION = "7. network distance"
PER_USER = 5  # Pro: five concurrent jobs per user


@dataclass
class _Op:
    samples: list[float]
    pg_trips: int
    redis_trips: int
    cpu_s: float | None = None


def _delay_s() -> float:
    return float(os.environ.get("BENCH_NET_DELAY_MS", "1")) / 1000.0


@contextlib.contextmanager
def _proxied(env: BenchEnv, delay_s: float) -> Iterator[tuple[Container, WireProxy, WireProxy]]:
    db = urlparse(env.database_url)
    rd = urlparse(env.redis_url)
    if rd.scheme != "redis" or not db.hostname:
        raise RuntimeError("the network-distance mode needs TCP Postgres and Redis")
    pg_proxy = WireProxy(db.hostname, db.port or 5432, delay_s=delay_s)
    rd_proxy = WireProxy(rd.hostname or "127.0.0.1", rd.port or 6379, delay_s=delay_s)
    settings = load_settings(
        {
            "APP_ENV": "development",
            "DATABASE_URL": db._replace(netloc=f"{db.username or 'postgres'}@127.0.0.1:"
                                        f"{pg_proxy.port}").geturl(),
            "REDIS_URL": f"redis://127.0.0.1:{rd_proxy.port}/0",
            "REDIS_KEY_PREFIX": env.prefix,
            "WORKER_URL": env.server.url,
            "PORT": str(env.server.port),
            "QUEUE_BACKEND": "local",
            "AI_PROVIDER": "offline",
            "LOG_LEVEL": "WARNING",
            "PROVIDER_CAP_INTERACTIVE": str(PROVIDER_CAP),
        }
    )  # fmt: skip
    c = dev_container(settings, queue=env.queue)
    set_container(c)
    try:
        yield c, pg_proxy, rd_proxy
    finally:
        set_container(env.container)
        c.close()
        pg_proxy.close()
        rd_proxy.close()


def _trivial_trips(
    env: BenchEnv, pg_proxy: WireProxy, rd_proxy: WireProxy, n: int
) -> dict[str, float]:
    """p50 seconds of one trivial round trip, direct and through the proxies."""
    db = urlparse(env.database_url)
    out: dict[str, float] = {}
    for name, port in (("direct", db.port or 5432), ("proxied", pg_proxy.port)):
        conn = connect(db._replace(netloc=f"{db.username or 'postgres'}@127.0.0.1:{port}").geturl())
        try:
            out[f"pg_{name}"] = pct(_times(lambda c=conn: c.run("SELECT 1"), n), 50)
        finally:
            conn.close()
    rd = urlparse(env.redis_url)
    for name, port in (("direct", rd.port or 6379), ("proxied", rd_proxy.port)):
        client = redis.Redis(host="127.0.0.1", port=port)
        try:
            out[f"redis_{name}"] = pct(_times(client.ping, n), 50)
        finally:
            client.close()
    return out


def _times(fn: Callable[[], Any], n: int) -> list[float]:
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _measure(fn: Callable[[], Any], n: int, pg: WireProxy | None, rd: WireProxy | None) -> _Op:
    samples: list[float] = []
    pg_trips: list[int] = []
    rd_trips: list[int] = []
    for _ in range(n):
        pg0 = pg.counts.round_trips if pg else 0
        rd0 = rd.counts.round_trips if rd else 0
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        pg_trips.append((pg.counts.round_trips if pg else 0) - pg0)
        rd_trips.append((rd.counts.round_trips if rd else 0) - rd0)
    return _Op(samples, min(pg_trips), min(rd_trips))


def _cpu_per_call(fn: Callable[[], Any], n: int) -> float:
    """Process CPU per call minus the calling thread's own (the HTTP client's)."""
    p0, t0 = time.process_time(), time.thread_time()
    for _ in range(n):
        fn()
    p1, t1 = time.process_time(), time.thread_time()
    return ((p1 - p0) - (t1 - t0)) / n


class _Ops:
    """The measured operations on whatever container is installed."""

    def __init__(self, env: BenchEnv, client: httpx.Client, tag: str, n: int) -> None:
        self.env, self.client = env, client
        # A warmed Pro user per PER_USER creates (never near a per-user limit), made
        # before any clock starts.
        users = env.pro_users(-(-n // PER_USER), f"net{tag}")
        self._headers_left = iter(
            [{"Authorization": f"Bearer {env.token(u)}"} for u in users for _ in range(PER_USER)]
        )

    def _headers(self) -> dict[str, str]:
        return next(self._headers_left)

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        r = self.client.post(path, json=body, headers=headers)
        if r.status_code != 202:
            raise RuntimeError(f"{path}: {r.status_code} {r.text}")
        data: dict[str, Any] = r.json()
        return data

    def create(self) -> dict[str, Any]:
        return self.post("/v1/create", BRIEF, self._headers())


def _prepare_regens(env: BenchEnv, client: httpx.Client, n: int) -> list[tuple[str, str]]:
    """``n`` (draft id, token) pairs whose create has succeeded (variants exist)."""
    ops = _Ops(env, client, "rg", n)
    pairs = []
    for _ in range(n):
        headers = ops._headers()
        pairs.append((ops.post("/v1/create", BRIEF, headers)["draft_id"], headers))
    deps = worker_deps(env)
    for job in env.queue.drain():
        assert run_job(deps, job) is JobResult.SUCCEEDED
    return [(d, h["Authorization"]) for d, h in pairs]


def run(env: BenchEnv, report: Report, n: int) -> dict[str, Any]:
    delay = _delay_s()
    results: dict[str, Any] = {"delay_ms_each_way": delay * 1e3, "n": n}
    library_user = env.pro_users(1, "netlib")[0]
    lib_headers = {"Authorization": f"Bearer {env.token(library_user)}"}
    with httpx.Client(base_url=env.server.url, timeout=30) as client:
        for i in range(40):
            raw = {"hook": f"Hook {i}", "script": "A script.", "caption": "c", "hashtags": []}
            body = {"raw": raw, "platform": "tiktok", "title": f"Asset {i}", "tags": ["t"]}
            r = client.post("/v1/library/assets", json=body, headers=lib_headers)
            assert r.status_code == 201, r.text

        def library() -> None:
            r = client.get("/v1/library/assets", params={"limit": 20}, headers=lib_headers)
            assert r.status_code == 200, r.text

        # CPU per request, direct (no proxy): the server's work is the same at any distance.
        cpu: dict[str, float] = {}
        direct = _Ops(env, client, "cpu", 3 * n + 3)
        direct.create()
        cpu["create"] = _cpu_per_call(direct.create, n)
        env.release_jobs(env.queue.drain())
        regen_pairs = _prepare_regens(env, client, n + 1)

        def regen_fn(pairs: list[tuple[str, str]]) -> Callable[[], Any]:
            it = iter(pairs)

            def regen() -> Any:
                draft, auth = next(it)
                body = {"draft_id": draft, "mode": "full"}
                return direct.post("/v1/regenerate", body, {"Authorization": auth})

            return regen

        regen = regen_fn(regen_pairs)
        regen()
        cpu["regenerate"] = _cpu_per_call(regen, n)
        env.release_jobs(env.queue.drain())
        deps = worker_deps(env)
        for _ in range(n + 1):
            direct.create()
        jobs = iter(env.queue.drain())
        assert run_job(deps, next(jobs)) is JobResult.SUCCEEDED
        t0 = time.thread_time()
        for job in jobs:
            assert run_job(deps, job) is JobResult.SUCCEEDED
        cpu["worker job"] = (time.thread_time() - t0) / n
        library()
        cpu["library page"] = _cpu_per_call(library, n)

        with _proxied(env, delay) as (c, pg, rd):
            trivial = _trivial_trips(env, pg, rd, max(50, n))
            ops = _Ops(env, client, "px", 2 * n + 2)
            ops.create()  # warm: statements prepared, scripts loaded, pool open
            measured: dict[str, _Op] = {"create": _measure(ops.create, n, pg, rd)}
            env.release_jobs(env.queue.drain())
            regen = regen_fn(_prepare_regens(env, client, n + 1))
            regen()
            measured["regenerate"] = _measure(regen, n, pg, rd)
            env.release_jobs(env.queue.drain())
            for _ in range(n + 1):
                ops.create()
            pdeps = replace(worker_deps(env), db=c.db, enforcer=c.enforcer)
            jobs = iter(env.queue.drain())
            assert run_job(pdeps, next(jobs)) is JobResult.SUCCEEDED
            measured["worker job"] = _measure(lambda: run_job(pdeps, next(jobs)), n, pg, rd)
            library()
            measured["library page"] = _measure(library, n, pg, rd)
    _report(report, measured, trivial, cpu, delay)
    results["trivial_p50_ms"] = {k: v * 1e3 for k, v in trivial.items()}
    results["ops"] = {
        name: {
            "p50_ms": pct(op.samples, 50) * 1e3,
            "p99_ms": pct(op.samples, 99) * 1e3,
            "postgres_round_trips": op.pg_trips,
            "redis_round_trips": op.redis_trips,
            "cpu_ms": cpu[name] * 1e3,
        }
        for name, op in measured.items()
    }
    report.extra["network"] = results
    return results


def _report(
    report: Report,
    measured: dict[str, _Op],
    trivial: dict[str, float],
    cpu: dict[str, float],
    delay: float,
) -> None:
    pg_rtt, rd_rtt = trivial["pg_proxied"], trivial["redis_proxied"]
    added_pg = trivial["pg_proxied"] - trivial["pg_direct"]
    added_rd = trivial["redis_proxied"] - trivial["redis_direct"]
    report.add(
        Figure(SECTION, "proxy added delay per round trip, PG / Redis",
               added_pg * 1e3, "ms", 2 * delay * 1e3, "set delay", value2=added_rd * 1e3,
               bound2=2 * delay * 1e3)
    )  # fmt: skip
    report.add(
        Figure(SECTION, "trivial round trip through the proxy p50, PG / Redis", pg_rtt * 1e3,
               "ms", None, "info", value2=rd_rtt * 1e3)
    )  # fmt: skip
    for name, op in measured.items():
        floor = op.pg_trips * pg_rtt + op.redis_trips * rd_rtt
        report.add(
            Figure(SECTION, f"{name} p50 / p99 ({op.pg_trips} PG + {op.redis_trips} Redis trips)",
                   pct(op.samples, 50) * 1e3, "ms", floor * 1e3, "floor: trips × trivial trip",
                   value2=pct(op.samples, 99) * 1e3,
                   details={"pg_trips": op.pg_trips, "redis_trips": op.redis_trips})
        )  # fmt: skip
    for name in measured:
        report.add(
            Figure(SECTION, f"  CPU / {name} (no proxy)", cpu[name] * 1e3, "ms", None, "info")
        )
