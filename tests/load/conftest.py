"""Load and fault fixtures: private, killable servers (``tests/support/load.py``).

The e2e fixtures (the real local server over the run's database and Redis prefix) come
from the ``tests.support.e2e`` plugin. ``LOAD_SCALE`` (default 1) scales request counts.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.load import PG_BIN, PrivatePostgres, PrivateRedis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    srv = PrivateRedis(tmp_path)
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"{PG_BIN}/initdb is not installed (a PostgreSQL 15 package; PG_BIN=…)")
    # Not under pytest's tmp dir: its parents are 0700 and the postgres user must enter it.
    workdir = Path(tempfile.mkdtemp(prefix="reel-load-pg-"))
    srv = PrivatePostgres(workdir)
    try:
        srv.init()
        srv.start()
        yield srv
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            srv.stop("fast")  # already stopped by the test is fine
        shutil.rmtree(workdir, ignore_errors=True)
