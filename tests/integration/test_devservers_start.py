"""The embedded Postgres (pgserver) comes up even when its first start fails.

As root, pgserver runs postgres as its own user, which must enter every parent of the data
dir; a parent made private again in between (pytest resets its base temp dir to 0700 each
time a session starts) makes ``pg_ctl start`` fail before the server log exists, and
pgserver then raises FileNotFoundError for that log. The first start here fails that way.
"""

from __future__ import annotations

import logging
import shutil
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
