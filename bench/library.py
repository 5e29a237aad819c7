"""5. Library listing at 100k (or ``BENCH_LIBRARY_ASSETS``) assets for one user.

The assets are inserted with ``generate_series`` INSERTs through a raw pg8000
connection, then ``VACUUM (ANALYZE)``d (the steady state autovacuum reaches). Every
figure times ``PgAssets.list`` inside ``Database.uow()`` (the repository the API uses:
SQL, row mapping, cursor), p50 and p99 over repeated runs after one warm call. Page 50
is reached by walking cursors from the first page; the walk itself is timed once. The
filters are timed interleaved with the unfiltered page (one of each per round), so the
printed ratio to the unfiltered p50 is fair on a loaded machine.

Data (n = 100k × BENCH_SCALE, or BENCH_LIBRARY_ASSETS): platforms cycle over 3,
statuses over 4; tags are ``tag{g%10}`` plus ``grp{g%7}``, or ``rare`` for one row in
1000; the title carries one of ten words (``delta`` = 10 % of rows); the script carries
``zulu`` in one row in 1000.
``absent`` cases match nothing: the worst case of a filter the index order cannot serve.
A page with a tag or a word reads through ``asset_terms`` (shared/db/README.md), which
the bulk insert fills through its trigger.

Bound: the unfiltered first page p50 (a keyset page should cost the same at any depth
and with any filter); for the first page itself, a trivial unit of work (``SELECT 1``).
``EXPLAIN (ANALYZE, BUFFERS)`` of each query lands in results.json.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pg8000.native

from bench.env import BenchEnv
from bench.report import Figure, Report, pct
from shared.db import AssetPage, AssetStatus, Platform, VariantContent
from shared.db.asset_queries import list_sql
from shared.db.connection import connect

__all__ = ["run"]

SECTION = "5. library"
PAGE = 20

_INSERT = """
INSERT INTO assets (id, owner_id, title, platform, tags, status, hook, script, caption,
    hashtags, created_at, updated_at)
SELECT gen_random_uuid(), :owner,
    'Reel ' || g || ' ' || (ARRAY['alpha','bravo','charlie','delta','echo','foxtrot',
        'golf','hotel','india','juliet'])[1 + g % 10],
    (ARRAY['instagram_reels','tiktok','youtube_shorts'])[1 + g % 3],
    CASE WHEN g % 1000 = 0 THEN ARRAY['tag' || (g % 10), 'rare']
         ELSE ARRAY['tag' || (g % 10), 'grp' || (g % 7)] END,
    (ARRAY['draft','ready','published','archived'])[1 + g % 4],
    'Hook ' || g || ': stop scrolling, this changes how you cook',
    'Script ' || g || ': open on the pan, show the problem, then the fix in three steps. '
        || CASE WHEN g % 1000 = 0 THEN 'zulu ' ELSE '' END
        || 'Close on the finished plate and a call to follow for part two.',
    'Caption for reel ' || g || ' with a short call to action',
    ARRAY['#reel', '#cooking', '#bench'],
    now() - make_interval(secs => g), now() - make_interval(secs => g)
FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) AS g
"""

CASES: list[tuple[str, dict[str, Any]]] = [
    ("platform=tiktok (1/3)", {"platform": Platform.TIKTOK}),
    ("status=archived (1/4)", {"status": AssetStatus.ARCHIVED}),
    ("tags=[tag3] (1/10)", {"tags": ["tag3"]}),
    ("tags=[rare] (1/1000)", {"tags": ["rare"]}),
    ("tags=[absent] (0 rows)", {"tags": ["absent"]}),
    ("q=reel (every row)", {"q": "reel"}),
    ("q=delta (1/10)", {"q": "delta"}),
    ("q=zulu (1/1000)", {"q": "zulu"}),
    ("q=absent (0 rows)", {"q": "absentword"}),
    ("platform+q=delta (1/30)", {"platform": Platform.TIKTOK, "q": "delta"}),
    ("status+tags=[tag3] (1/20)", {"status": AssetStatus.ARCHIVED, "tags": ["tag3"]}),
    ("tags=[tag3]+q=delta (1/10)", {"tags": ["tag3"], "q": "delta"}),
    ("platform+q=zulu (1/3000)", {"platform": Platform.TIKTOK, "q": "zulu"}),
    ("tags=[tag0]+q=zulu (1/1000)", {"tags": ["tag0"], "q": "zulu"}),
    ("q=zul (prefix, 1/1000)", {"q": "zul"}),
    ("q=s (prefix of many words)", {"q": "s"}),
]


def _insert(env: BenchEnv, owner: str, n: int) -> float:
    conn = connect(env.database_url, timeout_s=600)
    t0 = time.perf_counter()
    try:
        conn.run("INSERT INTO users (id) VALUES (:id) ON CONFLICT DO NOTHING", id=owner)
        step = 50_000
        for lo in range(1, n + 1, step):
            conn.run(_INSERT, owner=owner, lo=lo, hi=min(n, lo + step - 1))
        # What autovacuum would have done by now: statistics, visibility map, and the GIN
        # pending lists (fastupdate) merged into the indexes.
        conn.run("VACUUM (ANALYZE) assets")
        conn.run("VACUUM (ANALYZE) asset_terms")
    finally:
        conn.close()
    return time.perf_counter() - t0


def _explain(env: BenchEnv, owner: str, filters: dict[str, Any], after: Any) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the generic plan, as the API's connections run it."""
    tags = sorted(set(filters.get("tags", ())))
    binding = {
        "platform": Platform(filters["platform"]).value if filters.get("platform") else None,
        "status": AssetStatus(filters["status"]).value if filters.get("status") else None,
        "tags": tags,
        "q": filters.get("q"),
    }
    sql, params = list_sql(owner, binding, after, PAGE)
    numbered, values = pg8000.native.to_statement(sql)
    literals = ", ".join(pg8000.native.literal(v) for v in values(params))
    conn = connect(env.database_url)
    try:
        conn.run("SET plan_cache_mode = force_generic_plan; SET jit = off")
        conn.run(f"PREPARE bench_page AS {numbered}")
        # EXECUTE takes no bind parameters: its arguments are literals.
        rows = conn.run(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_page({literals})")
    finally:
        conn.close()
    lines = [str(r[0]) for r in rows]
    exec_ms = next(
        (float(x.split(":")[1].split()[0]) for x in lines if x.startswith("Execution Time")),
        None,
    )
    return {"execution_ms": exec_ms, "plan": lines}


DELETED_CASES: list[tuple[str, dict[str, Any]]] = [
    ("first page", {}),
    ("tags=[rare] (1/1000)", {"tags": ["rare"]}),
    ("q=zulu (1/1000)", {"q": "zulu"}),
    ("q=absent (0 rows)", {"q": "absentword"}),
]


def _with_deleted(
    env: BenchEnv,
    report: Report,
    owner: str,
    n: int,
    reps: int,
    page: Callable[..., AssetPage],
    first_p50: float,
) -> dict[str, Any]:
    """The same owner gets ``n`` more assets, all soft-deleted and newer than the live
    ones (the worst place: a full index would walk them first). Live reads must not
    notice: the partial indexes of migrations/0002_lifecycle.sql do not hold them."""
    conn = connect(env.database_url, timeout_s=600)
    try:
        step = 50_000
        for lo in range(n + 1, 2 * n + 1, step):
            conn.run(_INSERT.replace("now() - make_interval", "now() + make_interval"),
                     owner=owner, lo=lo, hi=min(2 * n, lo + step - 1))  # fmt: skip
        conn.run(
            "UPDATE assets SET deleted_at = now() WHERE owner_id = :o AND created_at > now()",
            o=owner,
        )
        conn.run("VACUUM (ANALYZE) assets")
        conn.run("VACUUM (ANALYZE) asset_terms")
    finally:
        conn.close()
    out: dict[str, Any] = {"deleted_rows": n}
    for name, filters in DELETED_CASES:
        items = page(**filters).items
        assert all(a.deleted_at is None for a in items)
        samples = _sample(lambda f=filters: page(**f), reps)  # type: ignore[misc]
        out[name] = {"p50_ms": pct(samples, 50) * 1e3, "p99_ms": pct(samples, 99) * 1e3}
        report.add(
            Figure(SECTION, f"list {name}, + {n:,} deleted rows, p50 / p99",
                   pct(samples, 50) * 1e3, "ms", first_p50, "unfiltered first page p50",
                   value2=pct(samples, 99) * 1e3)
        )  # fmt: skip
    return out


def _saves(env: BenchEnv, report: Report, owner: str, reps: int) -> dict[str, Any]:
    """What asset_terms costs a save: one asset with a short script, one with a script of
    5,000 characters (~750 distinct words), each in its own unit of work."""
    db = env.container.db
    with db.uow() as uow:
        uow.users.ensure(owner)
        uow.commit()
    long_script = " ".join(f"w{i % 600}x{i % 7}" for i in range(800))[:5000]
    out: dict[str, Any] = {}
    for label, script in (
        ("short script", "Open on the pan, then the fix."),
        ("5,000-char script", long_script),
    ):

        def save(script: str = script) -> None:
            with db.uow() as uow:
                uow.assets.create(
                    owner,
                    title="Saved reel",
                    platform=Platform.TIKTOK,
                    tags=["saved", "bench"],
                    status=AssetStatus.READY,
                    content=VariantContent("A hook", script, "A caption", ("#reel",)),
                    source_draft_id=None,
                    source_variant_id=None,
                    idempotency_key=None,
                )
                uow.commit()

        samples = _sample(save, max(5, reps // 4))
        out[label] = {"p50_ms": pct(samples, 50) * 1e3, "p99_ms": pct(samples, 99) * 1e3}
        report.add(
            Figure(
                SECTION,
                f"save an asset, {label}, p50 / p99",
                pct(samples, 50) * 1e3,
                "ms",
                None,
                "info (asset_terms written by trigger)",
                value2=pct(samples, 99) * 1e3,
            )
        )
    return out


def _sample(fn: Callable[[], Any], reps: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run(env: BenchEnv, report: Report, n: int, reps: int) -> dict[str, Any]:
    db = env.container.db
    secret = env.settings.effective_cursor_secret
    owner = f"{env.prefix}-library"
    n = int(os.environ.get("BENCH_LIBRARY_ASSETS", n))
    insert_s = _insert(env, owner, n)

    def page(cursor: str | None = None, **filters: Any) -> AssetPage:
        with db.uow() as uow:
            return uow.assets.list(owner, limit=PAGE, cursor=cursor, cursor_secret=secret,
                                   **filters)  # fmt: skip

    def trivial() -> None:
        with db.uow() as uow:
            uow._session.run("SELECT 1")

    floor = _sample(trivial, reps)
    first = _sample(page, reps)
    assert len(page().items) == PAGE

    t0 = time.perf_counter()
    cursor: str | None = None
    for _ in range(49):
        cursor = page(cursor).next_cursor
        assert cursor is not None
    walk_s = time.perf_counter() - t0
    page50 = _sample(lambda: page(cursor), reps)
    p50_items = page(cursor).items
    assert len(p50_items) == PAGE

    first_p50 = pct(first, 50) * 1e3
    label = "unfiltered first page p50"
    report.add(
        Figure(SECTION, f"list first page p50 / p99 (n={n:,}, {PAGE}/page)", first_p50, "ms",
               pct(floor, 50) * 1e3, "uow SELECT 1", value2=pct(first, 99) * 1e3)
    )  # fmt: skip
    report.add(
        Figure(SECTION, "list page 50 (cursor) p50 / p99", pct(page50, 50) * 1e3, "ms",
               first_p50, label, value2=pct(page50, 99) * 1e3)
    )  # fmt: skip
    report.add(
        Figure(SECTION, "  walk pages 1-49 (total)", walk_s * 1e3, "ms", first_p50 * 49,
               "49 × first page p50")
    )  # fmt: skip
    from shared.db.cursor import Keyset

    last = p50_items[0]
    explains: dict[str, Any] = {
        "first page": _explain(env, owner, {}, None),
        "page 50": _explain(env, owner, {}, Keyset(last.created_at, last.id)),
    }
    results: dict[str, Any] = {
        "assets": n,
        "insert_s": insert_s,
        "floor_p50_ms": pct(floor, 50) * 1e3,
        "first_page": {"p50_ms": first_p50, "p99_ms": pct(first, 99) * 1e3},
        "page_50": {"p50_ms": pct(page50, 50) * 1e3, "p99_ms": pct(page50, 99) * 1e3},
        "walk_49_pages_ms": walk_s * 1e3,
    }
    # Interleaved: each round times the unfiltered page and then every filter once, so
    # a shared, loaded machine slows all of them alike and the ratios stay fair.
    found = {name: len(page(**filters).items) for name, filters in CASES}
    rounds: dict[str, list[float]] = {name: [] for name, _ in [("unfiltered", {}), *CASES]}
    for _ in range(reps):
        for name, filters in [("unfiltered", {}), *CASES]:
            t0 = time.perf_counter()
            page(**filters)
            rounds[name].append(time.perf_counter() - t0)
    base = pct(rounds["unfiltered"], 50) * 1e3
    results["interleaved_unfiltered_p50_ms"] = base
    print(f"library n={n:,}: unfiltered first page p50 {base:.2f} ms (interleaved)")
    for name, filters in CASES:
        samples = rounds[name]
        explains[name] = _explain(env, owner, filters, None)
        results[name] = {
            "p50_ms": pct(samples, 50) * 1e3,
            "p99_ms": pct(samples, 99) * 1e3,
            "ratio": pct(samples, 50) * 1e3 / base,
            "items": found[name],
            "server_execution_ms": explains[name]["execution_ms"],
        }
        print(f"  {name:30} p50 {pct(samples, 50) * 1e3:7.2f} ms  "
              f"{pct(samples, 50) * 1e3 / base:5.2f}x  ({found[name]} items)")  # fmt: skip
        report.add(
            Figure(SECTION, f"list {name} p50 / p99", pct(samples, 50) * 1e3, "ms",
                   base, "unfiltered first page p50, interleaved",
                   value2=pct(samples, 99) * 1e3,
                   details={"server_execution_ms": explains[name]["execution_ms"]})
        )  # fmt: skip
    report.add(
        Figure(SECTION, "  bulk insert + VACUUM ANALYZE (generate_series)", insert_s, "s", None,
               "info")
    )  # fmt: skip
    results["saves"] = _saves(env, report, f"{owner}-saves", reps)
    deleted = int(os.environ.get("BENCH_LIBRARY_DELETED", n))
    results["with_deleted"] = _with_deleted(env, report, owner, deleted, reps, page, first_p50)
    report.extra["library"] = results
    report.extra["library_explain"] = explains
    return results
