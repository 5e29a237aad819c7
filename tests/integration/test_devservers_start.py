"""The embedded Postgres (pgserver) comes up even when its first start fails, and stops
even when pgserver's own stop fails.

As root, pgserver runs postgres as its own user, which must enter every parent of the data
dir; a parent made private again in between (pytest resets its base temp dir to 0700 each
time a session starts) makes ``pg_ctl start`` fail before the server log exists, and
pgserver then raises FileNotFoundError for that log. The first start here fails that way.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import devservers
from shared.db.connection import connect


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp dir: as root, pgserver's user must enter every parent.
    root = Path(tempfile.mkdtemp(prefix="reel-devservers-"))
    yield root / "pg"
    shutil.rmtree(root, ignore_errors=True)


def test_embedded_postgres_starts_after_a_failed_first_start(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pgserver
    from pgserver import postgres_server

    real_pg_ctl = postgres_server.pg_ctl
    starts: list[list[str]] = []

    def pg_ctl(args: list[str], **kw: Any) -> str:
        if "start" in args:
            starts.append(args)
            if len(starts) == 1:  # exits 1 before creating the log, as when denied entry
                raise subprocess.CalledProcessError(1, ["pg_ctl", *args])
        return str(real_pg_ctl(args, **kw))

    monkeypatch.setattr(postgres_server, "pg_ctl", pg_ctl)
    data_dir.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="reel.devservers"):
        server = devservers._start_postgres(pgserver, data_dir.resolve())
    try:
        conn = connect(str(server.get_uri()))
        assert conn.run("SELECT 1") == [[1]]
        conn.close()
    finally:
        server.cleanup()
    assert len(starts) == 2
    assert "embedded Postgres did not start" in caplog.text


def test_stop_embedded_stops_postgres_when_pgserver_cannot(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pgserver's ``pg_ctl stop`` runs as its own user; denied (PermissionError, which
    pgserver does not catch), it left the postmaster running after ``make dev`` ended."""
    import pgserver
    from pgserver import postgres_server

    data_dir.mkdir(parents=True)
    server = devservers._start_postgres(pgserver, data_dir.resolve())
    pid = server.get_pid()
    assert pid
    assert devservers._alive(pid)
    real_pg_ctl = postgres_server.pg_ctl

    def pg_ctl(args: list[str], **kw: Any) -> str:
        if "stop" in args:
            raise PermissionError(13, "Permission denied", "pg_ctl")
        return str(real_pg_ctl(args, **kw))

    monkeypatch.setattr(postgres_server, "pg_ctl", pg_ctl)
    monkeypatch.setattr(devservers, "_servers", {"pg": server})
    try:
        devservers.stop_embedded()
        assert not devservers._alive(pid), "the embedded Postgres outlived stop_embedded()"
    finally:
        if devservers._alive(pid):
            os.kill(pid, signal.SIGKILL)
