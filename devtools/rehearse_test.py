"""``make rehearse-test``: bring the rehearsal up, run the journey against it, Ctrl-C it, and
prove nothing it started is left running.

1. starts ``python -m devtools.rehearse`` (what ``make rehearse`` runs) in its own process
   group and waits for its READY line;
2. runs ``scripts.smoke`` against the gateway (what ``SMOKE_TOKEN=… make smoke BASE_URL=…`` runs);
3. runs the e2e tests marked ``rehearsal`` through the base-URL switch
   (``E2E_REHEARSAL``): the journey, the smoke tests and the browser journey;
4. sends SIGINT to the rehearsal's process group, as a terminal's Ctrl-C does, and checks
   that the rehearsal, every process group it started, and every port it listened on
   are gone;
5. prints what it measured: processes started, each function's cold start (process start
   to its first answer), the journey times. Exit status 0 only when every step passed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from devtools.rehearse import READY_LINE, ROOT, STATE_DIR, STATE_FILE

START_TIMEOUT_S = 600  # the first run builds the runtime virtualenv (about 2 minutes)
STOP_TIMEOUT_S = 60
SWEEP_WAIT_S = 65  # the schedule is "* * * * *": one minute boundary, plus delivery


def _echo(stream: Any, ready: threading.Event, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)
        # CI logs are kept: the banner's token is masked there (it still reaches the tests
        # through the state file), as make smoke never prints one.
        shown = "  token    <in the state file>\n" if line.startswith("  token ") else line
        print(f"  | {shown}", end="", flush=True)
        if line.strip() == READY_LINE:
            ready.set()
    ready.set()  # EOF: the rehearsal exited (failed to start, or stopped)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def worker_requests(log: Path) -> Counter[tuple[str, int]]:
    """(route, status) of every request the worker finished, from its JSON log lines."""
    seen: Counter[tuple[str, int]] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "request_finished":
                seen[(str(entry.get("route")), int(entry.get("status", 0)))] += 1
    return seen


def _run(label: str, command: list[str], env: dict[str, str] | None = None) -> tuple[bool, float]:
    print(f"\nrehearse-test: {label}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    return result.returncode == 0, time.monotonic() - started


def main() -> int:
    t0 = time.monotonic()
    failures: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.rehearse"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    ready = threading.Event()
    lines: list[str] = []
    reader = threading.Thread(target=_echo, args=(proc.stdout, ready, lines), daemon=True)
    reader.start()
    ready.wait(START_TIMEOUT_S)
    if proc.poll() is not None or not any(line.strip() == READY_LINE for line in lines):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(STOP_TIMEOUT_S)
        print("rehearse-test: FAILED: the rehearsal did not come up", file=sys.stderr)
        return 1
    up_s = time.monotonic() - t0
    state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    gateway = state["gateway_url"]

    try:
        # The token travels in the environment, never on a command line.
        token_env = {"TOKEN": state["demo_token"], "SMOKE_TOKEN": state["demo_token"]}
        ok, smoke_s = _run(
            "smoke",
            [sys.executable, "-m", "scripts.smoke", "--base-url", gateway],
            env={**os.environ, **token_env},
        )
        if not ok:
            failures.append("make smoke against the gateway")
        ok, tests_s = _run(
            "journey tests",
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-m",
                "rehearsal",
                "tests/e2e/test_journey.py",
                "tests/e2e/test_smoke.py",
                "tests/rehearsal",
            ],
            env={**os.environ, "E2E_REHEARSAL": str(STATE_FILE)},
        )
        if not ok:
            failures.append("the e2e journey tests against the rehearsal")
        # The sweep schedule fires on minute boundaries: wait for one (at most ~a minute).
        worker_log = STATE_DIR / "logs" / "worker.log"
        scheduled_at = state["timings"]["sweep_scheduled_at"]
        while time.time() - scheduled_at < SWEEP_WAIT_S:
            if worker_requests(worker_log)[("/worker/sweep", 200)] > 1:  # beyond the probe
                break
            time.sleep(1)
    finally:
        # Ctrl-C, as a terminal sends it: SIGINT to the foreground process group.
        stop_started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            failures.append(f"the rehearsal did not stop within {STOP_TIMEOUT_S} s of SIGINT")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        stop_s = time.monotonic() - stop_started
        reader.join(5)

    left = [p["name"] for p in state["processes"] if group_alive(p["pgid"])]
    if group_alive(proc.pid):
        left.append("rehearsal orchestrator")
    listening = [p["name"] for p in state["processes"] if port_open(p["port"])]
    if left:
        failures.append(f"still running after Ctrl-C: {', '.join(left)}")
    if listening:
        failures.append(f"ports still open after Ctrl-C: {', '.join(listening)}")

    deliveries = worker_requests(STATE_DIR / "logs" / "worker.log")
    refused = {k: n for k, n in deliveries.items() if k[1] in (401, 403)}
    if refused:
        failures.append(f"the worker refused QStash deliveries: {refused}")
    sweeps = deliveries[("/worker/sweep", 200)] - 1  # one was the cold-start probe
    scheduled_for_s = time.time() - state["timings"]["sweep_scheduled_at"]
    if sweeps < 1:
        failures.append(f"no scheduled sweep was delivered in {scheduled_for_s:.0f} s")

    browser = STATE_DIR / "browser.json"
    browser_s = json.loads(browser.read_text())["journey_s"] if browser.exists() else None
    print("\nrehearse-test: measured")
    names = [p["name"] for p in state["processes"]]
    print(f"  processes started: {len(names)} ({', '.join(names)}), in their own process groups")
    print("  cold start (process start -> first answer to a real request through auth):")
    for p in state["processes"]:
        print(f"    {p['name']:15} {p['cold_start_ms']:7.0f} ms   {p['probe']}")
    functions = [p["cold_start_ms"] for p in state["processes"] if p["name"] != "nginx"]
    print(
        f"    functions: min {min(functions):.0f} ms, max {max(functions):.0f} ms, "
        f"mean {sum(functions) / len(functions):.0f} ms (started one at a time)"
    )
    timings = state["timings"]
    print(
        f"  rehearsal up in {up_s:.1f} s (packages {timings['package_s']:.1f} s, runtime venv "
        f"{timings['venv_s']:.1f} s, functions {timings['functions_s']:.1f} s)"
    )
    print(
        f"  QStash deliveries the worker answered: "
        f"{', '.join(f'{r} {st}: {n}' for (r, st), n in sorted(deliveries.items()))}; "
        f"scheduled sweeps: {sweeps} in {scheduled_for_s:.0f} s"
    )
    print(f"  smoke journey (create, poll, save) via the gateway: {smoke_s:.2f} s")
    print(f"  e2e journey tests (pytest, incl. browser): {tests_s:.2f} s")
    if browser_s is not None:
        print(f"  browser journey through the page: {browser_s:.2f} s")
    print(f"  Ctrl-C to everything stopped: {stop_s:.2f} s; left running: {left or 'nothing'}")
    print(f"  total: {time.monotonic() - t0:.1f} s; screenshots: {STATE_DIR / 'browser'}/")
    for failure in failures:
        print(f"rehearse-test: FAILED: {failure}", file=sys.stderr)
    if not failures:
        print("rehearse-test: passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
