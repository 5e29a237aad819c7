"""The shell blocks of the README and docs/, as tests/e2e/test_docs_commands.py runs them.

A block is a fenced ``bash`` / ``sh`` / ``shell`` block. One preceded by
``<!-- not-run: reason -->`` is listed, not run (a cloud deployment, a command that serves
until Ctrl-C). The runnable blocks of one file run in order in one bash, sharing variables
(the README's tour sets ``TOKEN``, ``API`` and ``H`` for the sections after it), with
``set -eo pipefail`` and a ``curl`` that fails on an HTTP error unless the command shows
the status line itself (``-i``): an error shown on purpose is shown with ``-i``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PRELUDE", "Block", "doc_files", "script_for", "shell_blocks"]

SHELL_LANGS = frozenset({"bash", "sh", "shell"})
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")

PRELUDE = """\
set -eo pipefail
curl() {
  case " $* " in
    *" -i "*|*" --include "*) command curl "$@" ;;
    *) command curl --fail-with-body "$@" ;;
  esac
}
"""


@dataclass(frozen=True, slots=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    text: str
    not_run: str | None  # the reason, for a block that is not run

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def shell_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, lang = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang in SHELL_LANGS:
            before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            marker = _NOT_RUN.match(before)
            body = "\n".join(ln.removeprefix(indent) for ln in lines[i + 1 : end])
            blocks.append(Block(path, i + 1, body, marker.group(1) if marker else None))
        i = end + 1
    return blocks


def script_for(blocks: list[Block], base_url: str) -> str:
    """One bash script running the runnable blocks in order, each announced on stderr,
    with the documented ``http://127.0.0.1:8080`` pointed at ``base_url``."""
    parts = [PRELUDE]
    for block in blocks:
        if block.not_run is None:
            parts.append(f"echo '>>> {block.where}' >&2")
            parts.append(block.text.replace("http://127.0.0.1:8080", base_url))
    return "\n".join(parts) + "\n"
