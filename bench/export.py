"""6. Account export memory: peak RSS of streaming GET /v1/me/export's document for an
account with 1,000 and with 10,000 assets (× BENCH_SCALE), each in a fresh process.

Each size runs in its own child process (``python -m bench.export_child``) so its
``ru_maxrss`` is its own: the child imports everything and exports an empty account
once (the baseline peak), then streams the real export through
``shared.api.export.export_document`` (the handler's only work besides headers),
counting bytes and dropping each chunk as a client socket would. The figure is the
growth of the peak over the baseline. Flat memory means the 10× account grows the peak
by about as much as the 1× one (the bound), not 10× as much. For contrast, the same
10× document joined in memory (what a non-streaming handler holds) is measured too.

Data: assets as in section 5 (``bench.library._INSERT``), one owner per size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.env import BenchEnv
from bench.library import _INSERT
from bench.report import Figure, Report
from shared.db.connection import connect

__all__ = ["run"]

SECTION = "6. export"


def _seed(env: BenchEnv, owner: str, n: int) -> None:
    conn = connect(env.database_url, timeout_s=600)
    try:
        conn.run("INSERT INTO users (id) VALUES (:id) ON CONFLICT DO NOTHING", id=owner)
        conn.run(_INSERT, owner=owner, lo=1, hi=n)
        conn.run("VACUUM (ANALYZE) assets")
    finally:
        conn.close()


def _child(env: BenchEnv, owner: str, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.export_child", env.database_url, owner, mode],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(env: BenchEnv, report: Report, small: int) -> dict[str, Any]:
    sizes = {"1x": small, "10x": small * 10}
    owners = {k: f"{env.prefix}-export-{k}" for k in sizes}
    for key, n in sizes.items():
        _seed(env, owners[key], n)
    results = {key: _child(env, owners[key], "stream") for key in sizes}
    results["10x joined"] = _child(env, owners["10x"], "joined")
    growth = {k: (v["peak_kb"] - v["baseline_kb"]) / 1024 for k, v in results.items()}
    for key in ("1x", "10x"):
        r = results[key]
        report.add(
            Figure(SECTION, f"export {sizes[key]:,} assets: peak RSS growth (streamed)",
                   growth[key], "MiB", growth["1x"], f"{sizes['1x']:,}-asset export",
                   details={**r, "mib_per_s": r["bytes"] / 2**20 / max(r["seconds"], 1e-9)})
        )  # fmt: skip
        report.add(
            Figure(SECTION, f"  export {sizes[key]:,} assets: bytes / time",
                   r["bytes"] / 2**20, "MiB", None, f"{r['seconds']:.2f} s")
        )  # fmt: skip
    report.add(
        Figure(SECTION, f"export {sizes['10x']:,} assets joined in memory (not streamed)",
               growth["10x joined"], "MiB", growth["10x"], "streamed, same account")
    )  # fmt: skip
    report.extra["export"] = {"sizes": sizes, "results": results, "growth_mib": growth}
    return results
