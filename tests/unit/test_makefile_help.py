"""Every Makefile target has its ``## target: what it does`` line, and ``make help`` lists
each once. The targets come from make's own database (``make -p``), not a regex over the
file, so a target added by an include or a variable is not missed."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def make_targets(makefile: Path) -> set[str]:
    """The named targets (not files, not special targets) in make's database."""
    db = subprocess.run(
        ["make", "-pRrq", "-f", str(makefile), "__no_such_target__"],
        cwd=makefile.parent,
        env=_ENV,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    files = db.split("\n# Files\n", 1)[1].split("\n# files hash-table stats", 1)[0]
    targets: set[str] = set()
    for entry in files.split("\n\n"):
        lines = [ln for ln in entry.splitlines() if ln]
        if not lines or lines[0].startswith("# Not a target"):
            continue
        if m := re.match(r"^([a-z][a-z0-9-]*):(?!=)", lines[0]):
            targets.add(m.group(1))
    return targets


def help_lines(makefile: Path) -> dict[str, str]:
    out = subprocess.run(
        ["make", "--no-print-directory", "-s", "-f", str(makefile), "help"],
        cwd=makefile.parent,
        env=_ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed: dict[str, str] = {}
    for line in out.splitlines():
        name, _, what = line.partition(" ")
        assert name not in listed, f"make help lists {name} twice"
        listed[name] = what.strip()
    return listed


def test_make_help_lists_every_target_with_one_line() -> None:
    targets = make_targets(ROOT / "Makefile")
    assert {"install", "demo", "dev", "test", "token", "help"} <= targets
    listed = help_lines(ROOT / "Makefile")
    assert set(listed) == targets, (
        f"without a ## line: {sorted(targets - set(listed))}; "
        f"## line without a target: {sorted(set(listed) - targets)}"
    )
    assert all(listed.values()), "every ## line says what its target does"


def test_a_target_without_its_line_is_noticed(tmp_path: Path) -> None:
    text = (ROOT / "Makefile").read_text()
    (tmp_path / "Makefile").write_text(text + "\nsurprise:\n\techo hi\n")
    listed = help_lines(tmp_path / "Makefile")
    assert "surprise" in make_targets(tmp_path / "Makefile")
    assert "surprise" not in listed
