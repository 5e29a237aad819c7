"""8. Cold start as Cloud Functions pays it: process start to the first answered request.

For every ``FunctionSpec`` in ``shared.registry.FUNCTIONS``: the functions-framework
CLI (``functions-framework --source functions/<module>.py --target <entry>``) is started
in a fresh process and one request without credentials is sent as soon as the port
accepts (polled every 2 ms); the figure is the time from ``Popen`` to that response
(401 for bearer and QStash functions: settings, container, router, authenticator or
signature verifier included; whatever the health and Stripe webhook functions answer).
The bound is a hello-world functions-framework function started and asked the same
way. Median of ``runs`` per case, round-robin after one untimed round (bytecode caches
warm, as in a deployed image). Nothing answers from a database: the configuration points
Postgres and Redis at a closed port, so a function that connected to answer would show.
"""

from __future__ import annotations

import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.imports import HELLO, ROOT
from bench.report import Figure, Report
from devtools.net import free_port
from shared.registry import FUNCTIONS, FunctionSpec

__all__ = ["run"]

SECTION = "8. cold start (first response)"
FF = str(Path(sys.executable).parent / "functions-framework")
_ENV = {
    "APP_ENV": "development",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "LOG_LEVEL": "WARNING",
}


def _request(spec: FunctionSpec | None) -> tuple[str, str]:
    """The function's first route (a placeholder id in its path), or ``/`` for hello."""
    if spec is None:
        return "GET", "/"
    from shared.api.routes import routes_for

    route = routes_for(spec.name)[0]
    return route.method, re.sub(r"\{\w+\}", "00000000-0000-0000-0000-000000000000", route.pattern)


def _first_response(spec: FunctionSpec | None, hello_dir: Path) -> tuple[float, int]:
    port = free_port()
    if spec is None:
        args, cwd, env = ["--source", "main.py", "--target", "hello"], hello_dir, {}
    else:
        src = f"functions/{spec.module}.py"
        args, cwd = ["--source", src, "--target", spec.entry_point], ROOT
        env = {**_ENV, "PYTHONPATH": str(ROOT)}
    method, path = _request(spec)
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [FF, *args, "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, env=full_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.name if spec else 'hello'} exited before answering")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                body = b"{}" if method in ("POST", "PATCH") else None
                conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                return time.perf_counter() - t0, resp.status
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                time.sleep(0.002)
            finally:
                conn.close()
    finally:
        proc.terminate()
        proc.wait()


def run(report: Report, runs: int) -> dict[str, Any]:
    cases: dict[str, FunctionSpec | None] = {"hello": None, **{s.name: s for s in FUNCTIONS}}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    statuses: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="reel-bench-cold-") as tmp:
        hello_dir = Path(tmp)
        (hello_dir / "main.py").write_text(HELLO, encoding="utf-8")
        for round_no in range(runs + 1):
            for name, spec in cases.items():
                seconds, status = _first_response(spec, hello_dir)
                statuses[name] = status
                if round_no:
                    samples[name].append(seconds)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    hello = medians["hello"]
    report.add(
        Figure(SECTION, f"hello-world functions-framework, start → first response "
               f"(median of {runs})", hello * 1e3, "ms", None, "the bound below")
    )  # fmt: skip
    for spec in FUNCTIONS:
        report.add(
            Figure(SECTION, f"{spec.name} start → first response ({statuses[spec.name]})",
                   medians[spec.name] * 1e3, "ms", hello * 1e3 * 1.5, "1.5 × hello-world",
                   goal=True)
        )  # fmt: skip
    results = {"runs": runs, "median_s": medians, "status": statuses, "samples_s": samples}
    report.extra["cold_start"] = results
    return results
