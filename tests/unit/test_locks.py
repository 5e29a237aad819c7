"""The dependency locks (make lock) stay complete and consistent with the direct pins.

``requirements.lock`` is the runtime tree (shipped in every function zip);
``requirements-dev.lock`` is runtime + tools, installed by ``make install`` with
``--require-hashes``. Editing a pin in requirements*.txt without ``make lock`` fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("-r "):
            pins.update(direct_pins(path.parent / line[3:].strip()))
        elif m := _PIN.match(line):
            pins[_norm(m.group(1))] = m.group(2)
    return pins


def lock_entries(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name => (version, hashes) of a uv/pip-compile lock with hashes."""
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if m := _PIN.match(line):
            current = _norm(m.group(1))
            entries[current] = (m.group(2), frozenset())
        elif current and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            version, hashes = entries[current]
            entries[current] = (version, hashes | {h.group(1)})
        elif not line.startswith(" "):
            current = None
    return entries


def check_locks(root: Path) -> list[str]:
    problems: list[str] = []
    runtime = lock_entries(root / "requirements.lock")
    dev = lock_entries(root / "requirements-dev.lock")
    for lock_name, lock, pins in (
        ("requirements.lock", runtime, direct_pins(root / "requirements.txt")),
        ("requirements-dev.lock", dev, direct_pins(root / "requirements-dev.txt")),
    ):
        for name, version in sorted(pins.items()):
            if name not in lock:
                problems.append(f"{lock_name} lacks {name} (run make lock)")
            elif lock[name][0] != version:
                problems.append(f"{lock_name}: {name} {lock[name][0]}, pinned {version}")
        for name, (_, hashes) in sorted(lock.items()):
            if not hashes:
                problems.append(f"{lock_name}: {name} has no hash")
    for name, entry in sorted(runtime.items()):
        if dev.get(name) != entry:
            problems.append(f"requirements-dev.lock: {name} differs from requirements.lock")
    checkov = lock_entries(root / "requirements-checkov.lock")
    for name, version in sorted(direct_pins(root / "requirements-checkov.txt").items()):
        if checkov.get(name, ("", frozenset()))[0] != version:
            problems.append(f"requirements-checkov.lock: {name} is not at {version}")
    for name, (_, hashes) in sorted(checkov.items()):
        if not hashes:
            problems.append(f"requirements-checkov.lock: {name} has no hash")
    return problems


def test_locks_match_the_pins_and_each_other() -> None:
    assert check_locks(ROOT) == []


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("requirements.txt", "httpx==0.28.1", "httpx==0.28.0"),
        ("requirements-dev.txt", "pytest==9.2.0", "pytest==9.1.0"),
        ("requirements.lock", "--hash=sha256:", "--hash=md5:"),
        ("requirements-checkov.txt", "checkov==3.3.30", "checkov==3.3.29"),
    ],
)
def test_check_notices_a_stale_lock(tmp_path: Path, path: str, old: str, new: str) -> None:
    for name in (
        "requirements.txt",
        "requirements-dev.txt",
        "requirements.lock",
        "requirements-dev.lock",
        "requirements-checkov.txt",
        "requirements-checkov.lock",
    ):
        (tmp_path / name).write_text((ROOT / name).read_text())
    text = (tmp_path / path).read_text()
    assert old in text
    (tmp_path / path).write_text(text.replace(old, new))
    assert check_locks(tmp_path)


def test_make_install_requires_hashes_from_the_dev_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert re.search(r"^\$\(STAMP\): requirements\.lock requirements-dev\.lock$", makefile, re.M)
    assert "--require-hashes -r requirements-checkov.lock" in makefile
