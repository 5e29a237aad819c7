"""Round trips to Postgres and Redis, counted on the wire (issue 17).

Every Postgres and Redis connection of the container goes through a counting TCP proxy
(``devtools.wire_proxy``): a round trip is a client burst answered by the server,
whatever the driver or the adapter think they do. In production each one crosses a
network (Cloud SQL through the VPC connector, Upstash over HTTPS), so these counts, not
CPU, set the latency a creator waits for. The steady state is measured after one warm
request of the same kind (statements prepared on the pooled connection, scripts
loaded, plan cached, counters seeded).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from devtools.compose import dev_container
from devtools.offline_writer import OfflineWriter
from devtools.wire_proxy import WireProxy
from shared.bootstrap import Container, set_container
from shared.config import Settings, load_settings
from shared.db.connection import connect
from shared.plans import PLANS, PlanName
from shared.queue import WORKER_GENERATE_PATH, JobPayload, sign_qstash
from shared.services.worker import JobResult, WorkerDeps, run_job
from tests.e2e.api_support import RecordingQueue, seed_charged, sql


@dataclass(frozen=True)
class Trips:
    redis: int
    postgres: int


# Round trips per operation. Before issue 17 (main at 538a273), counted by this file:
# first create of a period 2 Redis + 29 Postgres, create 1 + 11, create with an
# Idempotency-Key 2 + 11, full regenerate 1 + 16, worker job 2 + 29, library page 0 + 5
# (0 + 8 with q). A signed delivery over HTTP was 3 + 4 on main at 58391fc: its jti took
# a SET NX of its own before the job's 2; it now rides on the job's lease refresh.
EXPECTED = {
    "first create": Trips(redis=2, postgres=2),
    "create": Trips(redis=1, postgres=1),
    "create + Idempotency-Key": Trips(redis=2, postgres=1),
    # The pool spent: a pack or grant pays, chosen in the same admission call; a create
    # crossing a usage-notice mark writes the notice in the generation's own statement.
    "create paid by a credit": Trips(redis=1, postgres=1),
    "create crossing a notice mark": Trips(redis=1, postgres=1),
    "regenerate (full)": Trips(redis=1, postgres=2),
    "regenerate (targeted)": Trips(redis=1, postgres=2),
    # As create: the key is claimed inside the admission call and completed after the
    # insert; a stored answer is looked up first only when the draft's own checks fail.
    "regenerate + Idempotency-Key": Trips(redis=2, postgres=2),
    # The running and the terminal status published for the event streams (GET
    # /v1/generations/{id}/events) ride the two script calls the job makes anyway (the
    # lease refresh, the release): 4 + 4 when each was a SET of its own.
    "worker job": Trips(redis=2, postgres=4),
    "worker delivery (signed HTTP)": Trips(redis=2, postgres=4),
    "library page": Trips(redis=0, postgres=1),
    "library page (q)": Trips(redis=0, postgres=1),
}

BRIEF = {"brief": "Three ways to brew better coffee at home", "platform": "tiktok"}


@dataclass
class Wire:
    container: Container
    queue: RecordingQueue
    pg: WireProxy
    redis: WireProxy

    def count(self, fn: Callable[[], Any]) -> tuple[Trips, Any]:
        with self.pg.counting() as pg, self.redis.counting() as rd:
            result = fn()
        return Trips(redis=rd[0], postgres=pg[0]), result

    def worker_deps(self) -> WorkerDeps:
        return self.container.worker_deps(OfflineWriter(latency_s=0.0))

    def run_jobs(self) -> None:
        deps = self.worker_deps()
        jobs, self.queue.jobs = self.queue.jobs, []
        for job in jobs:
            assert run_job(deps, job) is JobResult.SUCCEEDED


def _counted(name: str, trips: Trips) -> Trips:
    """``trips``, printed (``pytest -s``): runs on different servers compare line by line."""
    print(f"[round trips] {name}: redis={trips.redis} postgres={trips.postgres}")
    return trips


def _tcp(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if not parsed.hostname or parsed.query.startswith("host="):
        # The embedded servers listen on TCP too: only a socket URL given by hand lands here.
        pytest.skip("the counting proxy speaks TCP: TEST_POSTGRES_ADMIN_URL/TEST_REDIS_URL "
                    "name a Unix socket")  # fmt: skip
    return parsed.hostname, parsed.port or {"redis": 6379}.get(parsed.scheme, 5432)


@pytest.fixture(scope="module")
def wire(base_env: dict[str, str], container: Container) -> Iterator[Wire]:
    """A container whose Postgres and Redis connections all cross counting proxies."""
    pg_host, pg_port = _tcp(base_env["DATABASE_URL"])
    rd_host, rd_port = _tcp(base_env["REDIS_URL"])
    print(f"[round trips] servers: Postgres {pg_host}:{pg_port}, Redis {rd_host}:{rd_port}")
    with ExitStack() as stack:
        pg = WireProxy(pg_host, pg_port)
        stack.callback(pg.close)
        rd = WireProxy(rd_host, rd_port)
        stack.callback(rd.close)
        db_url = urlparse(base_env["DATABASE_URL"])._replace(netloc=f"postgres@127.0.0.1:{pg.port}")
        settings: Settings = load_settings(
            {
                **base_env,
                "DATABASE_URL": db_url.geturl(),
                "REDIS_URL": f"redis://127.0.0.1:{rd.port}/0",
                # Its own key space: the jobs recorded here are never delivered, and
                # their leases must not hold the provider slots other tests need.
                "REDIS_KEY_PREFIX": base_env["REDIS_KEY_PREFIX"] + "rt",
                "LOG_LEVEL": "WARNING",
            }
        )
        queue = RecordingQueue()
        c = dev_container(settings, queue=queue, llm=OfflineWriter(latency_s=0.0))
        stack.callback(c.close)
        set_container(c)
        stack.callback(set_container, container)
        yield Wire(c, queue, pg, rd)


@pytest.fixture
def user(wire: Wire, api: Callable[..., Any]) -> Any:
    """A fresh Pro user (granted through the proxied container: plan cache invalidated)."""
    wire.queue.jobs = []  # other tests' undelivered jobs
    return api("pro")


def _post(user: Any, path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    r: httpx.Response = user.post(path, body, **headers)
    assert r.status_code == 202, r.text
    data: dict[str, Any] = r.json()
    return data


def _create(user: Any, **headers: str) -> dict[str, Any]:
    return _post(user, "/v1/create", BRIEF, **headers)


def _keyed(user: Any) -> dict[str, Any]:
    return _create(user, **{"Idempotency-Key": uuid.uuid4().hex})


def test_first_create_of_a_period(wire: Wire, api: Callable[..., Any]) -> None:
    # A fresh user: the plan cache is empty and no counter of this month or hour exists
    # (every user meets a new hour every hour). Another fresh user's first create warms
    # the instance (the same statements prepared on the pooled connection).
    wire.queue.jobs = []
    _create(api("pro"))
    user = api("pro")
    trips, _ = wire.count(lambda: _create(user))
    assert _counted("first create", trips) == EXPECTED["first create"]


def test_create_steady_state(wire: Wire, user: Any) -> None:
    _create(user)
    trips, _ = wire.count(lambda: _create(user))
    assert _counted("create", trips) == EXPECTED["create"]


def _standard_at(wire: Wire, api: Callable[..., Any], used: int) -> Any:
    """A Standard user (concurrency 2: the warm create and the measured one both hold a
    lease) with ``used`` pool generations already charged this month."""
    wire.queue.jobs = []
    user = api("standard")
    seed_charged(wire.container, user.user_id, count=used, plan="standard")
    return user


def test_create_paid_by_a_credit(wire: Wire, api: Callable[..., Any], database_url: str) -> None:
    user = _standard_at(wire, api, PLANS[PlanName.STANDARD].generations_per_month)
    grant = {"user_id": user.user_id, "generations": 5, "reason": "round trips"}
    r = user.client.post("/v1/admin/grants", json=grant, headers=user.admin_headers)
    assert r.status_code == 201, r.text
    _create(user)  # the first one also seeds the month, the hour and the credits hash
    trips, body = wire.count(lambda: _create(user))
    assert trips == EXPECTED["create paid by a credit"]
    paid = sql(
        database_url, "SELECT credit_id::text FROM generations WHERE id = CAST(:g AS uuid)",
        g=body["generation_id"],
    )  # fmt: skip
    assert paid == [[r.json()["id"]]]


def test_create_crossing_a_notice_mark(
    wire: Wire, api: Callable[..., Any], database_url: str
) -> None:
    mark = PLANS[PlanName.STANDARD].generations_per_month * 80 // 100
    user = _standard_at(wire, api, mark - 2)
    _create(user)  # mark - 1
    trips, _ = wire.count(lambda: _create(user))  # reaches the mark: pool_80
    assert trips == EXPECTED["create crossing a notice mark"]
    notices = sql(database_url, "SELECT kind FROM notices WHERE owner_id = :o", o=user.user_id)
    assert notices == [["pool_80"]]


def test_create_with_idempotency_key(wire: Wire, user: Any) -> None:
    _keyed(user)
    trips, _ = wire.count(lambda: _keyed(user))
    assert _counted("create + Idempotency-Key", trips) == EXPECTED["create + Idempotency-Key"]


@pytest.mark.parametrize("mode", ["full", "targeted"])
def test_regenerate(wire: Wire, user: Any, mode: str) -> None:
    created = [_create(user) for _ in range(2)]
    wire.run_jobs()
    bodies = []
    for c in created:
        body = {"draft_id": c["draft_id"], "mode": mode}
        if mode == "targeted":
            gen = user.get(f"/v1/generations/{c['generation_id']}").json()
            body["variant_id"] = gen["variants"][0]["id"]
        bodies.append(body)
    _post(user, "/v1/regenerate", bodies[0])
    trips, _ = wire.count(lambda: _post(user, "/v1/regenerate", bodies[1]))
    name = f"regenerate ({mode})"
    assert _counted(name, trips) == EXPECTED[name]


def test_regenerate_with_idempotency_key(wire: Wire, user: Any) -> None:
    created = [_create(user) for _ in range(2)]
    wire.run_jobs()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    _post(user, "/v1/regenerate", {"draft_id": created[0]["draft_id"], "mode": "full"}, **key)
    body = {"draft_id": created[1]["draft_id"], "mode": "full"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    trips, _ = wire.count(lambda: _post(user, "/v1/regenerate", body, **key))
    name = "regenerate + Idempotency-Key"
    assert _counted(name, trips) == EXPECTED[name]


def test_worker_job(wire: Wire, user: Any) -> None:
    _create(user)
    _create(user)
    deps = wire.worker_deps()
    first, second = wire.queue.jobs
    wire.queue.jobs = []
    assert run_job(deps, first) is JobResult.SUCCEEDED
    trips, result = wire.count(lambda: run_job(deps, second))
    assert result is JobResult.SUCCEEDED
    assert _counted("worker job", trips) == EXPECTED["worker job"]


def _signed(wire: Wire, job: JobPayload) -> tuple[bytes, dict[str, str]]:
    """A delivery as QStash makes it: the job, signed for the worker's URL."""
    settings = wire.container.settings
    body = job.to_body()
    url = settings.effective_worker_url + WORKER_GENERATE_PATH
    signature = sign_qstash(body, url, settings.effective_signing_keys[0])
    return body, {"Content-Type": "application/json", "Upstash-Signature": signature}


def _deliver(user: Any, delivery: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = delivery
    r: httpx.Response = user.client.post(WORKER_GENERATE_PATH, content=body, headers=headers)
    return r


def test_worker_delivery_signed_over_http(wire: Wire, user: Any) -> None:
    """The worker function end to end: the signature verified, its jti remembered (the
    same delivery again is refused) and the job run. The jti rides on the job's first
    script call, so the signature check costs no round trip of its own."""
    _create(user)
    _create(user)
    first, second = (_signed(wire, job) for job in wire.queue.jobs)
    wire.queue.jobs = []
    assert _deliver(user, first).json() == {"result": "succeeded"}
    trips, r = wire.count(lambda: _deliver(user, second))
    assert (r.status_code, r.json()) == (200, {"result": "succeeded"})
    name = "worker delivery (signed HTTP)"
    assert _counted(name, trips) == EXPECTED[name]
    assert _deliver(user, second).status_code == 401  # replayed


@pytest.mark.parametrize(
    "query",
    [{}, {"q": "coffee"}, {"tags": "t1"}, {"platform": "tiktok", "status": "ready"}],
    ids=["unfiltered", "q", "tags", "platform+status"],
)
def test_library_page(wire: Wire, user: Any, query: dict[str, str]) -> None:
    for i in range(3):
        raw = {"hook": f"Coffee hook {i}", "script": "A script.", "caption": "c", "hashtags": []}
        body = {
            "raw": raw,
            "platform": "tiktok",
            "title": f"Coffee {i}",
            "tags": ["t1"],
            "status": "ready",
        }
        r = user.client.post("/v1/library/assets", json=body, headers=user.headers)
        assert r.status_code == 201, r.text

    def page() -> dict[str, Any]:
        r = user.get("/v1/library/assets", params={"limit": 2, **query})
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    first = page()
    assert first["items"]
    trips, _ = wire.count(page)
    name = "library page (q)" if "q" in query else "library page"
    assert _counted(name, trips) == EXPECTED[name]


def test_the_proxy_counts_what_the_driver_is_known_to_do(
    wire: Wire, base_env: dict[str, str]
) -> None:
    """REFERENCE "pg8000 on the wire": simple query 1 trip, unnamed statement with
    parameters 3 (Parse, Describe, Bind+Execute, each waited for), prepared execution 1."""
    db = urlparse(base_env["DATABASE_URL"])
    conn = connect(db._replace(netloc=f"postgres@127.0.0.1:{wire.pg.port}").geturl())
    try:
        with wire.pg.counting() as simple:
            conn.run("SELECT 1")
        with wire.pg.counting() as unnamed:
            conn.run("SELECT CAST(:x AS int)", x=1)
        statement = conn.prepare("SELECT CAST(:x AS int)")
        with wire.pg.counting() as prepared:
            assert statement.run(x=2) == [[2]]
    finally:
        conn.close()
    assert (simple[0], unnamed[0], prepared[0]) == (1, 3, 1)
