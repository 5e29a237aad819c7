"""``shared/plans.py`` stays the only place plan numbers live.

The numbers are read from the plan table itself (so the check follows a price change)
and searched in the code of ``shared/`` and ``functions/`` (tests and docs may quote
them). To be meaningful without being flaky:

- a price is distinctive (595, 1995, 3995 cents; 5.95, 19.95, 39.95 dollars): any such
  literal outside docstrings is a copy of the table;
- a monthly generation limit (60, 300, 900) is an everyday number (seconds, TTLs), so it
  counts only where it is bound to a plan-ish name (``generations``, ``quota``,
  ``monthly``, ``per_month``, ``plan``) — as an assignment, keyword, dict key,
  comparison or parameter default — or when all of them appear together in one module;
- likewise a variant cap above one (3, 5) bound to a ``variant`` name (``variants:
  int = Field(1, le=5)``), and the boost length (30) bound to a ``days``/``boost`` name
  inside something about boosts (``AdminBoostRequest.days``, ``extend_boost(days=30)``;
  a 30-day restore window is not a boost);
- the plan names spelled out together (``Literal["basic", "standard", "pro"]``, a
  tuple or list of them) are a copy of the plan list.

The detector is tested on snippets below, so an always-green scan cannot hide.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from shared.plans import BOOST_DAYS, BOOST_PRICE_CENTS, PLANS, PlanName

ROOT = Path(__file__).resolve().parents[2]
PLANS_FILE = ROOT / "shared" / "plans.py"

PRICES_CENTS = frozenset({p.price_cents for p in PLANS.values()} | {BOOST_PRICE_CENTS})
PRICES_DOLLARS = frozenset(c / 100 for c in PRICES_CENTS)
PRICE_TEXT = re.compile(
    "|".join(rf"(?<![\d.]){re.escape(f'{c / 100:.2f}')}(?![\d])" for c in sorted(PRICES_CENTS))
)
MONTHLY_LIMITS = frozenset(p.generations_per_month for p in PLANS.values())
PLANISH = re.compile(r"generation|quota|monthly|per_month|plan", re.IGNORECASE)
# (names a number is bound to, the plan numbers that may not be bound to them, what it
# is, and what the names or their enclosing class/function must mention, if anything)
BoundRule = tuple[re.Pattern[str], frozenset[int], str, re.Pattern[str] | None]
BOUND_RULES: tuple[BoundRule, ...] = (
    (PLANISH, MONTHLY_LIMITS, "monthly limit", None),
    (
        re.compile(r"variant", re.IGNORECASE),
        frozenset(p.max_variants for p in PLANS.values() if p.max_variants > 1),
        "variant cap",
        None,
    ),
    (
        re.compile(r"(^|_)days?($|_)|boost", re.IGNORECASE),
        frozenset({BOOST_DAYS}),
        "boost length",
        re.compile(r"boost", re.IGNORECASE),
    ),
)
PLAN_NAMES = frozenset(p.value for p in PlanName)


def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _name(node: ast.AST | None) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _is_limit(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Constant) and type(node.value) is int and node.value in MONTHLY_LIMITS
    )


def plan_number_violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Each plan number found in ``source``, as ``file:line: why``."""
    tree = ast.parse(source, filename)
    docs = _docstrings(tree)
    found: list[str] = []

    def flag(node: ast.AST, why: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {why}")

    scopes = _scopes(tree)

    def _bound(names: str, node: ast.AST | None, *, deep: bool = True) -> list[str]:
        return _bound_in(names, scopes.get(id(node), ""), node, deep=deep)

    limits_seen: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docs:
            value = node.value
            if type(value) is int and value in PRICES_CENTS:
                flag(node, f"price {value} (cents)")
            elif type(value) is float and value in PRICES_DOLLARS:
                flag(node, f"price {value}")
            elif isinstance(value, str) and PRICE_TEXT.search(value):
                flag(node, f"price in text {value!r}")
            if type(value) is int and value in MONTHLY_LIMITS:
                limits_seen.add(value)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = " ".join(_name(t) for t in targets)
            for why in _bound(names, node.value):
                flag(node, f"{why} bound to {names!r}")
        elif isinstance(node, ast.keyword):
            for why in _bound(node.arg or "", node.value, deep=False):
                flag(node.value, f"{why} passed as {node.arg}=")
        elif isinstance(node, ast.arguments):
            positional = [*node.posonlyargs, *node.args]
            pairs = [
                *zip(
                    positional[len(positional) - len(node.defaults) :], node.defaults, strict=True
                ),
                *((a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d),
            ]
            for arg, default in pairs:
                for why in _bound(arg.arg, default, deep=False):
                    flag(default, f"{why} as the default of {arg.arg}")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                for why in _bound(_name(key), value, deep=False):
                    flag(value, f"{why} under key {_name(key)!r}")
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            names = " ".join(_name(o) for o in operands)
            if any(_bound(names, o, deep=False) for o in operands):
                flag(node, "plan number compared with a plan value")
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            spelled = {
                e.value
                for e in node.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
            if spelled >= PLAN_NAMES:
                flag(node, f"the plan names spelled out: {sorted(spelled)}")
    if limits_seen == MONTHLY_LIMITS:
        found.append(f"{filename}: every monthly limit {sorted(MONTHLY_LIMITS)} appears")
    return found


def _scopes(tree: ast.AST) -> dict[int, str]:
    """Node id -> the names of the classes and functions around it (its own included)."""
    found: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            scope = f"{scope} {node.name}"
        found[id(node)] = scope
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, "")
    return found


def _bound_in(names: str, scope: str, node: ast.AST | None, *, deep: bool) -> list[str]:
    """What plan number ``node`` (or, when ``deep``, anything inside it) binds to ``names``."""
    if node is None or not names:
        return []
    nodes = list(ast.walk(node)) if deep else [node]
    values = {n.value for n in nodes if isinstance(n, ast.Constant) and type(n.value) is int}
    return [
        why
        for pattern, numbers, why, context in BOUND_RULES
        if pattern.search(names)
        and values & numbers
        and (context is None or context.search(f"{names} {scope}"))
    ]


def _code_files() -> list[Path]:
    files = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    return sorted(f for f in files if f.resolve() != PLANS_FILE)


def test_plan_numbers_live_only_in_plans_py() -> None:
    files = _code_files()
    assert len(files) > 20  # the scan really looked at the code base
    violations = [
        v
        for f in files
        for v in plan_number_violations(f.read_text("utf-8"), str(f.relative_to(ROOT)))
    ]
    assert violations == [], "plan numbers outside shared/plans.py:\n" + "\n".join(violations)


def test_the_plan_table_itself_would_be_flagged() -> None:
    assert plan_number_violations(PLANS_FILE.read_text("utf-8"), "plans.py")


@pytest.mark.parametrize(
    "snippet",
    [
        "PRICE_CENTS = 1995",
        "charge(amount=3995)",
        "label = 'Pro, $39.95 a month'",
        "price = 5.95",
        "GENERATIONS_PER_MONTH = 300",
        "Plan(generations_per_month=900)",
        "limits = {'basic_quota': 60}",
        "if monthly_used >= 900:\n    pass",
        "MONTHLY = {PlanName.BASIC: 60}",
        "caps = (60, 300, 900)",
        "def grant(user, monthly_quota=300): ...",
        "variants: int = Field(1, ge=1, le=5)",
        "max_variants = 3",
        "class AdminBoostRequest:\n    days: int = Field(30, ge=1, le=366)",
        "def grant_boost(now):\n    return now + timedelta(days=30)",
        "boost_days = 30",
        "def extend_boost(expires, now, days=30): ...",
        "plan: Literal['basic', 'standard', 'pro'] | None",
        "PAID = ('pro', 'standard', 'basic', 'pro_boost')",
    ],
)
def test_detector_flags_copies_of_the_table(snippet: str) -> None:
    assert plan_number_violations(snippet)


@pytest.mark.parametrize(
    "snippet",
    [
        "SIGNATURE_TOLERANCE_S = 300",
        "ttl_s = 60",
        "def f():\n    '''Pro costs $19.95 a month (SPEC §2).'''\n    return 900",
        "retry_after = 300",
        "plan = get_plan(name)\nlimit = plan.generations_per_month",
        "version = '19.950'",
        "timeout(seconds=60)",
        "duration_seconds: int = Field(30, ge=5, le=180)",
        "variants: int = Field(1, ge=1, le=MAX_VARIANTS)",
        "days: int = Field(BOOST_DAYS, ge=1, le=366)",
        "RESTORE_WINDOW = timedelta(days=30)",
        "class Retention:\n    days: int = 30",
        "retention_s = 30",
        "if plan == 'pro':\n    pass",
        "fields = ('hook', 'script', 'caption', 'hashtags')",
    ],
)
def test_detector_ignores_everyday_numbers(snippet: str) -> None:
    assert plan_number_violations(snippet) == []
