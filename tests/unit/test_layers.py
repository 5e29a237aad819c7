"""Imports run one way: down the layers of docs/architecture.md, and never in a cycle.

Every import statement counts (top-level, lazy inside a function, and type-only under
``TYPE_CHECKING``): a lazy import still ties the two modules together, and a type-only
one still means the lower layer knows the higher one. The layers, highest first::

    entry       functions/ (one thin module per Cloud Function), shared.ops (operator CLIs)
    edge        shared.api: the HTTP wrapper, route table, models, handlers, auth
    services    shared.services
    domain      shared.enforcement, shared.billing (Stripe use cases, effective plan)
    adapters    shared.db, shared.redis, shared.queue, shared.ai
    base        shared.observability
    leaf        shared.errors, shared.config, shared.clock, shared.needs, and the data
                every layer reads: shared.plans (the plan table), shared.registry (the
                deployed functions)

A module may import its own layer or any lower one. ``shared.bootstrap`` is the
composition root: it builds every layer (so it may import any of them, lazily) and only
the edge and the entry points may ask it for the container.

The checker is tested on small synthetic graphs below, so an always-green scan cannot
hide.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSITION_ROOT = "shared.bootstrap"

LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("entry", frozenset({"functions", "shared.ops"})),
    ("edge", frozenset({"shared.api"})),
    ("services", frozenset({"shared.services"})),
    ("domain", frozenset({"shared.enforcement", "shared.billing"})),
    ("adapters", frozenset({"shared.db", "shared.redis", "shared.queue", "shared.ai"})),
    ("base", frozenset({"shared.observability"})),
    (
        "leaf",
        frozenset(
            {
                "shared.errors",
                "shared.config",
                "shared.clock",
                "shared.needs",
                "shared.plans",
                "shared.registry",
            }
        ),
    ),
)
# The package's own __init__ (a docstring, no import).
LEAF_MODULES = frozenset({"shared"})
MAY_IMPORT_ROOT = frozenset({"entry", "edge"})

# Known back edges still to be removed. The test fails when one disappears, so the list
# shrinks with the code (issue 16 item 4 emptied it: services take command dataclasses,
# not the API's pydantic models).
KNOWN_BACK_EDGES: frozenset[tuple[str, str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    files = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").glob("*.py")]
    return {_module_name(p): p for p in files}


def _imports(tree: ast.AST, known: Iterable[str]) -> set[str]:
    """Our modules ``tree`` imports; ``from pkg import mod`` counts as ``pkg.mod``."""
    names = set(known)
    # Packages without an __init__.py (namespace packages) are importable names too.
    names |= {name.rsplit(".", i)[0] for name in known for i in range(1, name.count(".") + 1)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module not in names:
                continue
            subs = {f"{node.module}.{a.name}" for a in node.names} & names
            found.update(subs or {node.module})
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: _imports(ast.parse(path.read_text(encoding="utf-8")), modules)
        for name, path in modules.items()
    }


def layer_of(module: str) -> str | None:
    """The layer of ``module``: its longest listed prefix decides."""
    if module in LEAF_MODULES:
        return "leaf"
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), layer)
    return best[1] if best else None


_RANK = {layer: len(LAYERS) - i for i, (layer, _) in enumerate(LAYERS)}


def back_edges(graph: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """Imports that go up a layer, or reach for the composition root from below."""
    bad: set[tuple[str, str]] = set()
    for importer, imported in graph.items():
        if importer == COMPOSITION_ROOT:
            continue
        src = layer_of(importer)
        for target in imported:
            if target == COMPOSITION_ROOT:
                if src not in MAY_IMPORT_ROOT:
                    bad.add((importer, target))
                continue
            dst = layer_of(target)
            if src is None or dst is None or _RANK[dst] > _RANK[src]:
                bad.add((importer, target))
    return bad


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# -- the rules on the real code -------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    graph = import_graph()
    assert [m for m in graph if m != COMPOSITION_ROOT and layer_of(m) is None] == []


def test_no_module_imports_up_a_layer() -> None:
    assert back_edges(import_graph()) - KNOWN_BACK_EDGES == set()


def test_known_back_edges_are_still_there() -> None:
    """Remove an entry from ``KNOWN_BACK_EDGES`` once the code no longer needs it."""
    assert back_edges(import_graph()) >= KNOWN_BACK_EDGES


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


# -- the checker on synthetic graphs ----------------------------------------------------


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("shared.db.assets", "shared.services.library"),  # adapter reaching up
        ("shared.services.generation", "shared.api.models"),  # service knowing HTTP
        ("shared.errors", "shared.observability.logging"),
        ("shared.services.worker", "shared.bootstrap"),  # only the edge asks the root
        ("shared.unlisted", "shared.errors"),  # a new package must pick a layer
    ],
)
def test_the_checker_flags_an_upward_import(importer: str, imported: str) -> None:
    assert back_edges({importer: {imported}}) == {(importer, imported)}


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("functions.create", "shared.api.http"),
        ("shared.api.http", "shared.bootstrap"),
        ("shared.bootstrap", "shared.api.auth"),
        ("shared.config", "shared.plans"),
        ("shared.db.models", "shared.plans"),
        ("shared.billing.stripe_billing", "shared.db.database"),
        ("shared.queue.signing", "shared.redis.keys"),
    ],
)
def test_the_checker_allows_downward_and_sideways_imports(importer: str, imported: str) -> None:
    assert back_edges({importer: {imported}}) == set()


def test_the_checker_finds_a_cycle_through_a_lazy_import() -> None:
    source = "from b import x\n\ndef f():\n    from c import y\n"
    graph = {"a": _imports(ast.parse(source), {"a", "b", "c"}), "b": set(), "c": {"a"}}
    assert cycles(graph) == [["a", "c"]]


def test_the_checker_reads_from_package_import_module_as_the_module() -> None:
    tree = ast.parse("from shared.api import models as m\nfrom shared.api import http\n")
    known = {"shared.api", "shared.api.models", "shared.api.http"}
    assert _imports(tree, known) == {"shared.api.models", "shared.api.http"}


def test_the_checker_sees_imports_from_a_namespace_package() -> None:
    tree = ast.parse("from shared.services import library\n")
    assert _imports(tree, {"shared.services.library"}) == {"shared.services.library"}
