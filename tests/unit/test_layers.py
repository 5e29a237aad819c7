"""Imports run one way: down the layers of docs/architecture.md, and never in a cycle.

Every import statement counts (top-level, lazy inside a function, and type-only under
``TYPE_CHECKING``): a lazy import still ties the two modules together, and a type-only
one still means the lower layer knows the higher one. The layers, highest first::

    tools       scripts/, bench/, tests/support: they may use everything below
    devtools    devtools/: development stand-ins and the development composition
    entry       functions/ (one thin module per Cloud Function)
    edge        shared.api: the HTTP wrapper, route table, models, handlers, auth
    ops         shared.ops: the operator command lines, entry points that speak to the
                services, never HTTP
    services    shared.services
    domain      shared.enforcement, shared.billing (Stripe use cases, effective plan)
    adapters    shared.db, shared.redis, shared.queue, shared.ai
    base        shared.observability
    leaf        shared.errors, shared.config, shared.clock, shared.needs, and the data
                every layer reads: shared.plans (the plan table), shared.registry (the
                deployed functions)

A module may import its own layer or any lower one. ``shared.bootstrap`` is the
composition root: it builds every production layer (so it may import any of them,
lazily, but never the development tools above ``entry``: development composes its
container in ``devtools`` by passing adapters to ``Container``), and only the edge, the
entry points, the operator commands and the tools may ask it for the container.

Over the finer graph of rooms (each package a room; each module directly in ``shared/``
a room of its own) the rooms stand on ``FLOORS``; an import from one room to another
on the same floor or a higher one runs back up. ``JUSTIFIED_UPWARD`` lists the ones
that remain, each with its reason (docs/architecture.md), and stays at most two.

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
    ("tools", frozenset({"scripts", "bench", "tests.support"})),
    ("devtools", frozenset({"devtools"})),
    ("entry", frozenset({"functions"})),
    ("edge", frozenset({"shared.api"})),
    ("ops", frozenset({"shared.ops"})),
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
MAY_IMPORT_ROOT = frozenset({"tools", "devtools", "entry", "edge", "ops"})
# Layers the composition root must not reach: production never imports them.
DEVELOPMENT_LAYERS = frozenset({"tools", "devtools"})
SCANNED = ("shared", "functions", "devtools", "scripts", "bench", "tests/support")

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
    files = [p for folder in SCANNED for p in (ROOT / folder).rglob("*.py")]
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
            bad.update(
                (importer, t)
                for t in imported
                if layer_of(t) is None or layer_of(t) in DEVELOPMENT_LAYERS
            )
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


# -- rooms on floors: the finer, package-level graph -------------------------------------

ROOT_PACKAGE = "shared"
# Highest first. An import from a room to another room on its own floor or a higher one
# runs back up. The floors refine LAYERS (test_the_floors_refine_the_layers).
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"scripts", "bench", "tests.support"}),
    frozenset({"devtools"}),
    frozenset({"functions"}),
    frozenset({"shared.api.handlers"}),
    frozenset({"shared.api"}),
    frozenset({"shared.ops"}),
    frozenset({COMPOSITION_ROOT}),
    frozenset({"shared.services"}),
    frozenset({"shared.billing"}),
    frozenset({"shared.enforcement"}),
    frozenset({"shared.db", "shared.queue", "shared.ai"}),
    frozenset({"shared.redis"}),
    frozenset({"shared.observability"}),
    frozenset({"shared.config"}),
    frozenset({"shared.registry"}),
    frozenset({ROOT_PACKAGE, "shared.errors", "shared.clock", "shared.needs", "shared.plans"}),
)
# The imports between rooms that still run back up, each with its reason (also written
# in docs/architecture.md, "Layers"). At most two: the test fails when one is added
# without its reason, and when one listed here disappears.
JUSTIFIED_UPWARD: dict[tuple[str, str], str] = {
    ("shared.api", "shared.api.handlers"): (
        "the route table (shared.api.routes) names each handler function so a reader and a "
        "tool can follow a route to its code; the wrapper (shared.api.http) reads the table "
        "lazily, once it has matched a path"
    ),
}
MAX_UPWARD = 2


def packages() -> frozenset[str]:
    return frozenset(name for name, path in _modules().items() if path.name == "__init__.py")


# Packages deeper than ``shared.<name>`` that are rooms of their own; any other deeper
# package (``shared.enforcement.scripts``, ``shared.ai.providers``, ``shared.api.models``)
# is part of its parent's room: the parent's facade re-exports it.
SUB_ROOMS = frozenset({"shared.api.handlers"})


def room_of(module: str, packages: Iterable[str]) -> str:
    """A package is a room; so is each module directly in ``shared/``."""
    name = module if module in set(packages) else module.rpartition(".")[0]
    if name in ("", ROOT_PACKAGE):
        return module
    while name.count(".") > 1 and name not in SUB_ROOMS:
        name = name.rpartition(".")[0]
    return name


def room_graph(graph: Mapping[str, Iterable[str]], packages: Iterable[str]) -> dict[str, set[str]]:
    known = frozenset(packages)
    rooms: dict[str, set[str]] = {}
    for importer, imported in graph.items():
        src = room_of(importer, known)
        targets = rooms.setdefault(src, set())
        targets.update(room_of(t, known) for t in imported)
        targets.discard(src)
    return rooms


def floor_of(room: str) -> int | None:
    """0 for the top floor; None for a room on no floor."""
    return next((i for i, floor in enumerate(FLOORS) if room in floor), None)


def upward_imports(rooms: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """Imports from a room to a room on its own floor or a higher one (or on none)."""
    found: set[tuple[str, str]] = set()
    for src, targets in rooms.items():
        for dst in targets:
            a, b = floor_of(src), floor_of(dst)
            if a is None or b is None or b <= a:
                found.add((src, dst))
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


def test_every_room_stands_on_a_floor() -> None:
    rooms = room_graph(import_graph(), packages())
    assert sorted(r for r in rooms if floor_of(r) is None) == []
    assert len(rooms) >= 20  # the scan really saw the packages


def test_the_floors_refine_the_layers() -> None:
    """A room's floor lies inside its layer, and the floors keep the layers' order (the
    composition root between the operator commands and the services)."""
    rank = {**_RANK, "root": (_RANK["ops"] + _RANK["services"]) / 2}
    ranks = [
        {rank["root" if room == COMPOSITION_ROOT else str(layer_of(room))] for room in floor}
        for floor in FLOORS
    ]
    assert all(len(r) == 1 for r in ranks), ranks
    flat = [next(iter(r)) for r in ranks]
    assert flat == sorted(flat, reverse=True)


def test_imports_that_run_back_up_are_few_and_each_justified() -> None:
    upward = upward_imports(room_graph(import_graph(), packages()))
    assert len(JUSTIFIED_UPWARD) <= MAX_UPWARD
    assert all(reason.strip() for reason in JUSTIFIED_UPWARD.values())
    assert sorted(upward) == sorted(JUSTIFIED_UPWARD), (
        f"{len(upward)} imports run back up (at most {MAX_UPWARD}, each in JUSTIFIED_UPWARD):"
        f" {sorted(upward)}"
    )


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


# -- handlers go through services (issue 24 item 4) -------------------------------------
# A handler parses, calls one service function and renders: it never opens a unit of
# work and never imports ``shared.db`` (a read goes through ``shared.services.views``).

HANDLER_PACKAGE = "shared.api.handlers"
_OPEN_UNIT = frozenset({"uow", "unit_of_work"})


def handler_violations(module: str, tree: ast.AST) -> list[str]:
    """Where ``tree`` (the module ``module``) imports ``shared.db`` or opens a unit of work."""
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        if any(n == "shared.db" or n.startswith("shared.db.") for n in names):
            found.append(f"{module}:{node.lineno} imports shared.db")
        unit = None
        if isinstance(node, ast.Call):  # c.db.uow(), unit_of_work(...)
            func = node.func
            unit = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            unit = unit if unit in _OPEN_UNIT else None
        elif isinstance(node, ast.Name) and node.id == "UnitOfWork":
            unit = node.id
        if unit is not None:
            found.append(f"{module}:{node.lineno} uses {unit} (a unit of work)")
    return found


def test_handlers_reach_the_database_only_through_services() -> None:
    handlers = {
        name: path
        for name, path in _modules().items()
        if name == HANDLER_PACKAGE or name.startswith(HANDLER_PACKAGE + ".")
    }
    assert len(handlers) > 5  # the package is where this test looks
    found = [
        line
        for name, path in sorted(handlers.items())
        for line in handler_violations(name, ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == [], "\n".join(found)


def test_the_handler_rule_flags_a_repository_read_and_a_db_import() -> None:
    source = (
        "from shared.db import Draft\n"
        "from shared import db\n"
        "def get(req, c):\n"
        "    with c.db.uow() as uow:\n"
        "        return uow.drafts.get(req.user_id)\n"
    )
    assert handler_violations("m", ast.parse(source)) == [
        "m:1 imports shared.db",
        "m:2 imports shared.db",
        "m:4 uses uow (a unit of work)",
    ]
    allowed = "from shared.services import views\ndef get(req, c):\n    return views.x(c.db)\n"
    assert handler_violations("m", ast.parse(allowed)) == []


# -- the checker on synthetic graphs (continued) ----------------------------------------


def test_the_checker_reads_from_package_import_module_as_the_module() -> None:
    tree = ast.parse("from shared.api import models as m\nfrom shared.api import http\n")
    known = {"shared.api", "shared.api.models", "shared.api.http"}
    assert _imports(tree, known) == {"shared.api.models", "shared.api.http"}


def test_the_checker_sees_imports_from_a_namespace_package() -> None:
    tree = ast.parse("from shared.services import library\n")
    assert _imports(tree, {"shared.services.library"}) == {"shared.services.library"}


def test_the_composition_root_may_not_reach_the_development_tools() -> None:
    for tool in ("devtools.devservers", "scripts.dev_server", "tests.support.e2e"):
        assert back_edges({COMPOSITION_ROOT: {tool}}) == {(COMPOSITION_ROOT, tool)}
    assert back_edges({COMPOSITION_ROOT: {"shared.api.auth", "shared.db.database"}}) == set()


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("shared.redis.client", "devtools.devservers"),  # production reaching development
        ("shared.ai.factory", "devtools.offline_writer"),
        ("devtools.local_server", "scripts.dev_server"),
        ("functions.create", "tests.support.e2e"),
    ],
)
def test_the_checker_keeps_production_below_the_tools(importer: str, imported: str) -> None:
    assert back_edges({importer: {imported}}) == {(importer, imported)}


def test_the_checker_lets_the_tools_compose_a_container() -> None:
    graph = {
        "devtools.compose": {"shared.bootstrap", "devtools.local_queue"},
        "scripts.dev_server": {"devtools.compose", "shared.bootstrap"},
        "tests.support.e2e": {"devtools.compose", "shared.config"},
    }
    assert back_edges(graph) == set()


def test_rooms_are_packages_and_the_modules_of_shared() -> None:
    pkgs = {"shared", "shared.api", "shared.api.handlers", "devtools"}
    assert room_of("shared.api.handlers.admin", pkgs) == "shared.api.handlers"
    assert room_of("shared.api.handlers", pkgs) == "shared.api.handlers"
    assert room_of("shared.services.worker", pkgs) == "shared.services"  # namespace package
    assert room_of("shared.config", pkgs) == "shared.config"
    assert room_of("shared", pkgs) == "shared"
    assert room_of("devtools.devservers", pkgs) == "devtools"
    assert room_of("tests.support.e2e", pkgs) == "tests.support"


def test_the_count_sees_imports_up_and_sideways_but_not_down() -> None:
    graph = {
        "shared.config": {"shared.registry", "shared.errors"},  # down
        "shared.ops.costs": {"shared.api.handlers.admin"},  # up
        "bench.network": {"tests.support.wire_proxy"},  # sideways, on one floor
        "shared.db.models": {"shared.db.cursor", "shared.plans"},  # in its room, down
        "shared.redis.client": {"devtools.devservers"},  # up
        "shared.unlisted.x": {"shared.errors"},  # a room on no floor
    }
    assert upward_imports(room_graph(graph, {"shared"})) == {
        ("shared.ops", "shared.api.handlers"),
        ("bench", "tests.support"),
        ("shared.redis", "devtools"),
        ("shared.unlisted", "shared.errors"),
    }
