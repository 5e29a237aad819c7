"""6. Cold import per Cloud Function vs a hello-world functions-framework function.

For every ``FunctionSpec`` in ``shared.registry.FUNCTIONS``: the wall time of
``python -c "import functions.<module>"`` in a fresh process (repository root as the
working directory), median of ``runs`` after one untimed run (bytecode caches warm, as
in a deployed image). The bound is a one-file function that only imports
``functions_framework`` and decorates a handler, timed the same way from a temporary
directory; a bare ``python -c pass`` is shown too. Child CPU time (user + sys, median)
is kept in results.json: it is less sensitive than wall time to other load. The
slowest function's top imports (``-X importtime``, cumulative) land there too.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import Figure, Report
from shared.registry import FUNCTIONS

__all__ = ["run"]

SECTION = "6. cold import"
ROOT = Path(__file__).resolve().parents[1]
HELLO = '''"""Hello world."""

import functions_framework


@functions_framework.http
def hello(request):
    return "hello"
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _time_all(cases: dict[str, tuple[str, Path]], runs: int) -> dict[str, tuple[float, float]]:
    """(median wall, median CPU) seconds of ``python -c code`` in ``cwd`` for every case.

    Round-robin (one run of each case per round, after one untimed round that warms the
    bytecode caches) so drift on the machine hits every case alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for round_no in range(runs + 1):
        for name, (code, cwd) in cases.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code], cwd=cwd, env=_env(), check=True,
                capture_output=True,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if round_no:
                samples[name].append(wall)
                cpu[name].append(
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                )
    return {
        name: (statistics.median(samples[name]), statistics.median(cpu[name])) for name in cases
    }


def _top_imports(module: str, top: int = 12) -> list[dict[str, Any]]:
    """The heaviest imports of ``module`` by cumulative time (one ``-X importtime`` run)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT, env=_env(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append(
            {"module": name.strip(), "cumulative_ms": int(cum_us) / 1e3,
             "self_ms": int(self_us) / 1e3, "depth": depth}
        )  # fmt: skip
    rows.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return rows[:top]


def run(report: Report, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reel-bench-hello-") as tmp:
        hello_dir = Path(tmp)
        (hello_dir / "main.py").write_text(HELLO, encoding="utf-8")
        cases = {"pass": ("pass", hello_dir), "hello": ("import main", hello_dir)}
        cases.update({s.name: (f"import functions.{s.module}", ROOT) for s in FUNCTIONS})
        timings = _time_all(cases, runs)
    medians = {name: wall for name, (wall, _) in timings.items()}
    hello, bare = medians["hello"], medians["pass"]
    results: dict[str, Any] = {"runs": runs, "hello_s": hello, "python_pass_s": bare}
    results["functions"] = {s.name: medians[s.name] for s in FUNCTIONS}
    results["cpu_s"] = {name: c for name, (_, c) in timings.items()}
    report.add(
        Figure(SECTION, "python -c pass (interpreter start)", bare * 1e3, "ms", None, "info")
    )
    report.add(
        Figure(SECTION, f"hello-world functions-framework import (median of {runs})",
               hello * 1e3, "ms", None, "the bound below")
    )  # fmt: skip
    for spec in FUNCTIONS:
        seconds = medians[spec.name]
        report.add(
            Figure(SECTION, f"import functions.{spec.module}" + (" (hot)" if spec.hot else ""),
                   seconds * 1e3, "ms", hello * 1e3, "hello-world",
                   details={"cpu_ms": timings[spec.name][1] * 1e3})
        )  # fmt: skip
    slowest = max(results["functions"], key=results["functions"].get)
    module = next(s.module for s in FUNCTIONS if s.name == slowest)
    results["slowest"] = {"function": slowest, "top_imports": _top_imports(f"functions.{module}")}
    report.extra["cold_import"] = results
    return results
