"""What the migration job runs (terraform/migrate.tf) and the database roles it grants.

The job unpacks build/migrate.zip and runs ``python -m shared.db.migrate`` with only the
zip's files and the locked dependencies; these tests do the same against a fresh database,
then check what migrations/0010_database_roles.sql grants: health's role reads and never
writes, the functions' role writes rows and never changes the schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pg8000.native
import pytest

from devtools import devservers as servers
from scripts.package import migrate_contents, write_zip
from shared.db.connection import connect, parse_database_url
from shared.db.migrate import migrate, pending_files

ROLES = ("reel_app", "reel_readonly")


@pytest.fixture
def fresh_url(pg_admin_url: str) -> Iterator[str]:
    url = servers.create_database(pg_admin_url)
    yield url
    servers.drop_database(pg_admin_url, url)


def test_migrate_zip_migrates_a_database_on_its_own(fresh_url: str, tmp_path: Path) -> None:
    archive = tmp_path / "migrate.zip"
    write_zip(archive, migrate_contents())
    app = tmp_path / "app"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(app)
        names = set(zf.namelist())
    assert {"schema.sql", "requirements.txt", "shared/db/migrate.py"} <= names
    assert not any(n.startswith(("functions/", "devtools/", "tests/", "scripts/")) for n in names)
    # Only the zip's own files on the path (plus the installed dependencies), no settings
    # but DATABASE_URL: what the job's container has.
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": fresh_url, "HOME": str(tmp_path)}
    probe = subprocess.run(
        [sys.executable, "-c", "import shared; print(shared.__file__)"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(app)
    done = subprocess.run(
        [sys.executable, "-m", "shared.db.migrate"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = ["0000_schema", *(version for version, _ in pending_files())]
    assert done.stdout.strip() == "applied: " + ", ".join(expected)


def _ensure_roles(admin_url: str) -> None:
    # Roles are cluster-wide and other test runs may create them at the same moment.
    conn = connect(admin_url)
    try:
        for role in ROLES:
            conn.run(
                f"DO $$ BEGIN CREATE ROLE {role} LOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
    finally:
        conn.close()


def _as(url: str, role: str) -> pg8000.native.Connection:
    p = parse_database_url(url)
    return connect(replace(p, user=role, password=None).url())


def test_readonly_role_reads_and_cannot_write(pg_admin_url: str, fresh_url: str) -> None:
    _ensure_roles(pg_admin_url)
    migrate(fresh_url)
    ro = _as(fresh_url, "reel_readonly")
    try:
        assert ro.run("SELECT count(*) FROM stripe_tombstones") == [[0]]
        assert ro.run("SHOW default_transaction_read_only") == [["on"]]
        # Not only the session default: the grants refuse a write it switches back on.
        ro.run("SET default_transaction_read_only = off")
        with pytest.raises(pg8000.exceptions.DatabaseError, match="permission denied"):
            ro.run(
                "INSERT INTO stripe_tombstones (stripe_id, kind, buried_at)"
                " VALUES ('cus_x', 'customer', now())"
            )
    finally:
        ro.close()


def test_app_role_writes_rows_and_cannot_change_the_schema(
    pg_admin_url: str, fresh_url: str
) -> None:
    _ensure_roles(pg_admin_url)
    migrate(fresh_url)
    app = _as(fresh_url, "reel_app")
    try:
        app.run(
            "INSERT INTO stripe_tombstones (stripe_id, kind, buried_at)"
            " VALUES ('cus_y', 'customer', now())"
        )
        assert app.run("SELECT count(*) FROM stripe_tombstones") == [[1]]
        with pytest.raises(
            pg8000.exceptions.DatabaseError, match="permission denied|must be owner"
        ):
            app.run("DROP TABLE stripe_tombstones")
    finally:
        app.close()
