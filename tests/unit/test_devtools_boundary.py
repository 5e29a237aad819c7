"""Development code stays out of deployed packages: no module a function zip carries
(``functions/``, ``shared/``) imports ``devtools``, so a zip without it still imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def deployed_modules_importing_devtools(root: Path) -> list[str]:
    found = []
    for path in sorted([*root.glob("functions/*.py"), *root.glob("shared/**/*.py")]):
        if any(n == "devtools" or n.startswith("devtools.") for n in _imports(path)):
            found.append(str(path.relative_to(root)))
    return found


def test_no_deployed_module_imports_devtools() -> None:
    assert deployed_modules_importing_devtools(ROOT) == []


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    (tmp_path / "shared" / "api").mkdir(parents=True)
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "ok.py").write_text("import shared\n")
    (tmp_path / "shared" / "api" / "bad.py").write_text(
        "def f():\n    from devtools.fake_minimax import FakeMiniMax\n"
    )
    assert deployed_modules_importing_devtools(tmp_path) == ["shared/api/bad.py"]
