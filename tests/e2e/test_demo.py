"""`make demo` from nothing configured: embedded Postgres + Redis, every step succeeds, and
nothing it started outlives it — after success, Ctrl-C (SIGINT) or SIGTERM mid-run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _demo_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "UPSTASH_", "AUTH_", "QSTASH_"))
        and k not in ("APP_ENV", "PORT", "WORKER_URL", "AI_PROVIDER", "QUEUE_BACKEND")
    }
    return {**env, "LOCAL_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


def _processes_under(root: Path) -> dict[int, str]:
    """Processes (the embedded postgres and redis-server) running in or on ``root``.

    Postgres is daemonised by pg_ctl and Redis daemonises itself, so neither stays a
    child of the demo: they are found by their working directory and command line.
    """
    found: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(root) in cmd or cwd.startswith(str(root))):
            found[int(proc.name)] = cmd.strip()
    return found


def _left_behind(root: Path, grace_s: float = 5.0) -> dict[int, str]:
    deadline = time.monotonic() + grace_s
    while (found := _processes_under(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp dir: as root, pgserver runs initdb as its own user, which must
    # enter every parent, and any pytest session starting meanwhile (another run on this
    # machine) sets /tmp/pytest-of-<user> back to 0700 — initdb then fails at random.
    root = Path(tempfile.mkdtemp(prefix="reel-demo-"))
    path = root / "local"
    yield path
    for pid in _processes_under(path):  # what a failing run left: this test started it
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_demo_runs_end_to_end_on_embedded_servers(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        env=_demo_env(data_dir),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Demo finished: every step succeeded." in result.stdout
    for step in ("create (3 variants)", "regenerate (targeted: hook)", "save to library", "usage"):
        assert f"[ok ] {step}" in result.stdout
    assert _left_behind(data_dir) == {}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_demo_stops_its_servers_when_interrupted(data_dir: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        env=_demo_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:  # mid-run: the servers are up and a job is in flight
            seen.append(line)
            if line.startswith("[ok ] create (3 variants)"):
                break
        else:
            pytest.fail("the demo ended before its first create:\n" + "".join(seen[-40:]))
        assert _processes_under(data_dir), "nothing embedded was running mid-run"
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen[-20:]) + rest[-3000:]
    assert "Demo interrupted." in rest
    assert _left_behind(data_dir) == {}
