"""Development code stays out of deployed packages: a module a function zip carries
(``functions/``, ``shared/``) imports ``devtools`` only lazily, inside the body of an
``if`` whose condition reads ``is_development`` (production settings never enter it), so
a zip without ``devtools/`` still imports and runs. (No deployed module imports it at
all any more: ``tests/unit/test_layers.py`` forbids it; this weaker rule is a second line.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _is_devtools(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name == "devtools" or a.name.startswith("devtools.") for a in node.names)
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return node.module == "devtools" or node.module.startswith("devtools.")
    return False


def _reads_is_development(test: ast.expr) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "is_development" for n in ast.walk(test))


def _unguarded(tree: ast.AST) -> list[int]:
    """Lines importing devtools outside a development-guarded ``if`` body in a function."""
    found: list[int] = []

    def visit(node: ast.AST, in_function: bool, guarded: bool) -> None:
        if _is_devtools(node) and not (in_function and guarded):
            found.append(getattr(node, "lineno", 0))
        for name, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                func = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                guard = guarded or (
                    isinstance(node, ast.If) and name == "body" and _reads_is_development(node.test)
                )
                visit(child, func, guard)

    visit(tree, False, False)
    return found


def deployed_modules_importing_devtools(root: Path) -> list[str]:
    found = []
    for path in sorted([*root.glob("functions/*.py"), *root.glob("shared/**/*.py")]):
        if _unguarded(ast.parse(path.read_text(encoding="utf-8"))):
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


def test_only_the_development_branch_may_import_it() -> None:
    guarded = (
        "def build(settings):\n"
        "    if settings.backend == 'local' and settings.is_development:\n"
        "        from devtools.local_queue import LocalQueue\n"
        "        return LocalQueue()\n"
    )
    assert _unguarded(ast.parse(guarded)) == []
    in_else = guarded.replace(
        "        from devtools", "        pass\n    else:\n        from devtools"
    )
    at_top = "from devtools.local_queue import LocalQueue\n"
    other_guard = guarded.replace("settings.is_development", "settings.debug")
    module_level_if = "if settings.is_development:\n    import devtools\n"
    for source in (in_else, at_top, other_guard, module_level_if):
        assert _unguarded(ast.parse(source)) != [], source
