"""Every shell command in README.md and docs/*.md runs, against a ``make dev`` server.

The server is ``scripts.dev_server`` (what ``make dev`` runs) from this tree, on a free port,
on the run's Postgres database and its own Redis prefix; the commands run from the
repository root in a shell whose PATH has no virtualenv on it, as a newcomer's has, so a
bare ``python -m …`` fails here as it fails for them. Blocks marked
``<!-- not-run: reason -->`` are listed (``-rA`` shows them), not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.net import free_port
from scripts.dev_server import TOUR
from tests.e2e.test_demo import _left_behind
from tests.support.doc_commands import Block, doc_files, script_for, shell_blocks
from tests.support.processes import running_until

ROOT = Path(__file__).resolve().parents[2]
_CONFIG_PREFIXES = ("DATABASE_URL", "REDIS_", "UPSTASH_", "AUTH_", "QSTASH_", "CORS_", "STRIPE_")
_CONFIG_NAMES = ("APP_ENV", "PORT", "WORKER_URL", "AI_PROVIDER", "QUEUE_BACKEND", "AI_API_KEY")
_MAKE_NAMES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV")


def newcomer_env(**settings: str) -> dict[str, str]:
    """This process's environment without any app setting, make level or virtualenv."""
    venvs = {str(ROOT / ".venv" / "bin"), str(Path(sys.executable).parent)}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_CONFIG_PREFIXES) and k not in (*_CONFIG_NAMES, *_MAKE_NAMES)
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p not in venvs
    )
    return {**env, **settings, "PYTHONUNBUFFERED": "1"}


def all_blocks() -> list[Block]:
    return [block for path in doc_files(ROOT) for block in shell_blocks(path)]


def test_each_block_not_run_says_why() -> None:
    blocks = all_blocks()
    skipped = [b for b in blocks if b.not_run is not None]
    for block in skipped:
        print(f"not run: {block.where}: {block.not_run}")
        assert block.not_run.strip(), f"{block.where}: a not-run marker needs its reason"
    assert len(skipped) < len(blocks) / 2, "most commands must run"


def test_the_readme_tour_is_what_make_dev_prints() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = next(b for b in shell_blocks(ROOT / "README.md") if "$API/v1/create" in b.text)
    assert tour.text.startswith("export TOKEN=$(make -s token)\nAPI=http://127.0.0.1:8080\n")
    assert tour.text.endswith(TOUR.rstrip()), "README's tour and scripts/dev_server.py differ"
    assert tour.not_run is None
    assert "SPEC.md" not in readme


@pytest.fixture(scope="module")
def dev_server(
    database_url: str, redis_url: str, run_prefix: str
) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = newcomer_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"{run_prefix}docs",
        AI_PROVIDER="offline",
    )
    with running_until(
        [sys.executable, "-m", "scripts.dev_server", "--port", str(port)],
        "Example page",
        cwd=ROOT,
        env=env,
        timeout_s=120,
        stop_timeout_s=30,
    ) as seen:
        last = seen[-1] if seen else ""
        assert last.startswith("Example page"), "".join(seen[-40:])
        assert f"http://127.0.0.1:{port}/example/" in seen[-1]
        yield f"http://127.0.0.1:{port}", env


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in doc_files(ROOT)])
def test_the_commands_of_each_document_run(
    name: str, dev_server: tuple[str, dict[str, str]]
) -> None:
    base_url, env = dev_server
    path = next(p for p in doc_files(ROOT) if p.name == name)
    blocks = shell_blocks(path)
    if all(b.not_run is not None for b in blocks):
        pytest.skip(f"{name}: no command to run")
    result = subprocess.run(
        ["bash", "-c", script_for(blocks, base_url)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    started = [ln for ln in result.stderr.splitlines() if ln.startswith(">>> ")]
    assert result.returncode == 0, (
        f"{started[-1] if started else name} failed (exit {result.returncode}):\n"
        f"{result.stdout[-2500:]}\n{result.stderr[-2500:]}"
    )
    assert len(started) == sum(b.not_run is None for b in blocks)


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A work dir NOT under pytest's tmp dir: as root, pgserver runs its binaries (in the
    clone's venv) as its own user, who must enter every parent, and a pytest session
    starting meanwhile sets /tmp/pytest-of-<user> back to 0700."""
    root = Path(tempfile.mkdtemp(prefix="reel-clone-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_the_readme_runs_in_a_clean_clone_with_make_dev(outside_tmp: Path) -> None:
    """A newcomer's path: clone (the committed tree), ``make dev`` with nothing configured
    (its venv from the demo lock, embedded Postgres and Redis), then the README as written,
    pointed at the port make dev was given."""
    clone = outside_tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = newcomer_env(LOCAL_DATA_DIR=str(outside_tmp / "local"))
    # make dev would build the venv first; built apart, the free port stays free until used.
    built = subprocess.run(
        ["make", "--no-print-directory", "install-demo"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    port = free_port()
    with running_until(
        ["make", "--no-print-directory", "dev", f"PORT={port}"],
        "Example page",
        cwd=clone,
        env=env,
        timeout_s=600,
    ) as seen:
        assert seen, "make dev printed nothing"
        assert seen[-1].startswith("Example page"), "".join(seen[-40:])
        readme = shell_blocks(clone / "README.md")
        result = subprocess.run(
            ["bash", "-c", script_for(readme, f"http://127.0.0.1:{port}")],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        started = [ln for ln in result.stderr.splitlines() if ln.startswith(">>> ")]
        assert result.returncode == 0, (
            f"{started[-1] if started else 'README.md'} failed (exit {result.returncode}):\n"
            f"{result.stdout[-2500:]}\n{result.stderr[-2500:]}"
        )
    assert _left_behind(outside_tmp, grace_s=30) == {}, "make dev left its embedded servers running"
