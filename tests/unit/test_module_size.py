"""No module over 500 lines without a reason written at its top (issue 24 item 7).

A long module is usually two topics in one file; when it is not (one sequence read top
to bottom, say), its docstring says why it stays whole, in a paragraph that begins
"Why this module stays whole". The check is tested on a synthetic module below.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 500
REASON = "Why this module stays whole"
SCANNED = ("shared", "functions", "devtools", "bench", "scripts", "tests/support")


def too_long(path: Path) -> bool:
    """Over ``MAX_LINES`` lines with no written reason at its top."""
    text = path.read_text(encoding="utf-8")
    if text.count("\n") <= MAX_LINES:
        return False
    doc = ast.get_docstring(ast.parse(text)) or ""
    return REASON not in doc


def test_no_module_is_over_500_lines_without_its_reason() -> None:
    files = [p for top in SCANNED for p in (ROOT / top).rglob("*.py")]
    assert len(files) > 100  # the scan saw the tree
    assert sorted(str(p.relative_to(ROOT)) for p in files if too_long(p)) == []


def test_the_check_sees_a_long_module_and_its_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * (MAX_LINES + 1)
    plain = tmp_path / "plain.py"
    plain.write_text(f'"""A module."""\n{body}', encoding="utf-8")
    reasoned = tmp_path / "reasoned.py"
    reasoned.write_text(f'"""A module.\n\n{REASON}: one sequence."""\n{body}', encoding="utf-8")
    short = tmp_path / "short.py"
    short.write_text("x = 1\n" * MAX_LINES, encoding="utf-8")
    assert too_long(plain)
    assert not too_long(reasoned)
    assert not too_long(short)
