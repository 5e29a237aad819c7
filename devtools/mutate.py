"""``make mutate``: mutation testing of the core — would the tests notice a plausible bug?

Two engines, one report (mutants, killed, survived and score per module, then every
survivor):

* Lua (``lua/``): a small mutator of our own. Comparison flips (``>`` ↔ ``>=``,
  ``<`` ↔ ``<=``, ``==`` ↔ ``~=``), a dropped line that sets an expiry (``EXPIRE``,
  ``PEXPIRE``, ``EXPIREAT``, a ``SET`` with ``PX``/``EXAT`` — every discarded call is
  dropped in turn), gives something back (a refund, a ``DECR``) or releases a slot
  (``ZREM``, ``DEL``), and off-by-one (``+ 1`` ↔ ``+ 0``,
  ``- 1`` ↔ ``- 0``). Each mutant is written in place, the Lua tests run against it with
  a timeout (``-x``: the first failure kills it), and the file is restored whatever happens.
* Python (``shared/enforcement``, ``shared/billing`` and ``shared/plans.py``,
  ``shared/services/worker.py`` and ``job_end.py``, ``shared/api/auth.py``): mutmut, in a
  scratch copy of the tree per area (``build/mutate/<area>``: two areas can run side by
  side) with one configuration each, so each area's mutants run only that area's tests
  (and mutmut runs, of those, only the tests that reach the mutated function).

Mutants known to be equivalent (no behaviour can tell them apart) are listed with the
reason in ``devtools/mutate_equivalent.toml``; they count in neither killed nor survived.

Environment: ``MUTATE_ONLY`` = ``lua`` | ``python`` | an area or Lua file name (comma
list; default everything); ``MUTATE_MUTANTS`` (mutmut names or ``fnmatch`` patterns, comma
list, or ``@file`` with one a line: run and report only those, e.g. one function's
``shared.services.worker.x_run_job*``, or a Lua mutant as the report names it,
``lua/circuit.lua:40: flip < -> <=``);
``MUTATE_TIMEOUT_S`` (per Lua mutant, default 180);
``MUTATE_JOBS`` (mutmut's parallel children, default 2). Exit status 1 when a module's
score is under ``MUTATE_FLOOR`` (default 95).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "lua"
EQUIVALENT = ROOT / "devtools" / "mutate_equivalent.toml"
SCRATCH = ROOT / "build" / "mutate"

# The Lua scripts' tests, cheapest first (-x stops at the first failure). The Upstash
# adapter runs the same scripts: its half of each parametrised test is left out.
LUA_TESTS = [
    "tests/unit/test_lua_contract.py",
    "tests/integration/test_enforcement_expiry.py",
    "tests/integration/test_redis_scripts.py",
    "tests/integration/test_enforcement_admission.py",
    "tests/integration/test_enforcement_concurrency.py",
    "tests/integration/test_enforcement_stateful.py",
    "tests/integration/test_circuit.py",  # lua/circuit.lua, which no test above runs
    "tests/e2e/test_credits.py",  # lua/lib/credits.lua end to end: packs, grants, refunds
]
LUA_PYTEST_ARGS = ["-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", "-k", "not upstash"]

# Python areas: what mutmut mutates, and the tests it may run for them.
PY_AREAS: dict[str, tuple[list[str], list[str]]] = {
    "auth": (["shared/api/auth.py"], ["tests/unit/test_auth.py", "tests/integration/test_jwks.py"]),
    "billing": (
        ["shared/billing/", "shared/plans.py"],
        ["tests/unit/test_plans.py", "tests/unit/test_packs.py",
         "tests/unit/test_stripe_billing.py", "tests/unit/test_stripe_plan_numbers.py",
         "tests/e2e/test_billing.py",
         "tests/e2e/test_credits.py", "tests/integration/test_db_repositories.py",
         "tests/integration/test_stripe_webhook_effects.py"],
    ),
    "enforcement": (
        ["shared/enforcement/"],
        ["tests/unit/test_enforcement_wire.py", "tests/unit/test_lua_contract.py",
         "tests/integration/test_enforcement_admission.py",
         "tests/integration/test_enforcement_expiry.py",
         "tests/integration/test_enforcement_concurrency.py", "tests/e2e/test_api_limits.py",
         # The circuit and provider slots, credits, a keyed regenerate's early answer and
         # an account deletion's forget_user: none of the tests above reach them.
         "tests/integration/test_circuit.py", "tests/integration/test_redis_scripts.py",
         "tests/e2e/test_credits.py", "tests/e2e/test_api_idempotency.py",
         "tests/integration/test_lifecycle_races.py"],
    ),
    # The worker's own tests, and those that end a job it runs: cancelled (before or after
    # the provider), by the fallback provider, or racing an account deletion.
    "worker": (
        ["shared/services/worker.py", "shared/services/job_end.py"],
        ["tests/integration/test_worker_outcomes.py",
         "tests/integration/test_worker_interleavings.py", "tests/e2e/test_worker_recovery.py",
         "tests/e2e/test_worker_provider.py", "tests/e2e/test_worker_signatures.py",
         "tests/integration/test_cancel.py", "tests/e2e/test_cancel.py",
         "tests/integration/test_lifecycle_races.py", "tests/e2e/test_worker_fallback.py",
         "tests/e2e/test_worker_observability.py"],
    ),
}  # fmt: skip

# ---- the Lua mutator --------------------------------------------------------------------

_FLIPS = [(">=", ">"), (">", ">="), ("<=", "<"), ("<", "<="), ("==", "~="), ("~=", "==")]
_COMPARISON = re.compile(r"(?<![<>=~])(>=|<=|==|~=|>|<)(?![=])")
_OFF_BY_ONE = re.compile(r"([+-]) 1\b")
# A statement whose result is discarded (a write, sem_add, decr_if_positive, …), or an
# assignment that gives back or releases (refund_once, release_lease, ZREM, DECR, DEL).
_STATEMENT_CALL = re.compile(r"^(redis\.call|[a-z_]+)\(")
_GIVES_BACK = re.compile(
    r"refund_once\(|release_lease\(|idem_drop_pending\(|'(ZREM|DECR|DECRBY|DEL)'"
)


@dataclass(frozen=True)
class Mutant:
    module: str  # lua/admission.lua
    line: int  # 1-based
    kind: str  # "flip > -> >=", "drop", "off-by-one"
    before: str
    after: str

    @property
    def name(self) -> str:
        return f"{self.module}:{self.line}: {self.kind}"


def _code_part(line: str) -> tuple[str, str]:
    """(code, comment) of one Lua line (a ``--`` inside a string is not expected here)."""
    if "--" in line:
        i = line.index("--")
        return line[:i], line[i:]
    return line, ""


def lua_mutants(path: Path) -> Iterator[Mutant]:
    """Each mutant of ``path``; a second mutant of the same kind on one line is named with
    its place (``flip < -> <= #2``), so each name means one mutant."""
    seen: dict[tuple[int, str], int] = {}
    for mutant in _lua_mutants(path):
        key = (mutant.line, mutant.kind)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            mutant = replace(mutant, kind=f"{mutant.kind} #{seen[key]}")
        yield mutant


def _lua_mutants(path: Path) -> Iterator[Mutant]:
    module = str(path.relative_to(ROOT))
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        code, comment = _code_part(line)
        if not code.strip():
            continue
        for m in _COMPARISON.finditer(code):
            op = m.group(1)
            for a, b in _FLIPS:
                if op == a:
                    mutated = code[: m.start()] + b + code[m.end() :]
                    yield Mutant(module, n, f"flip {a} -> {b}", line, mutated + comment)
        for m in _OFF_BY_ONE.finditer(code):
            mutated = code[: m.start()] + f"{m.group(1)} 0" + code[m.end() :]
            yield Mutant(module, n, f"off-by-one {m.group(0)} -> {m.group(1)} 0", line, mutated)
        stripped = code.strip()
        if _STATEMENT_CALL.match(stripped) or (
            _GIVES_BACK.search(stripped) and not stripped.startswith(("local function", "return"))
        ):
            yield Mutant(module, n, "drop line", line, "")


def _apply(path: Path, mutant: Mutant) -> str:
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    assert lines[mutant.line - 1].rstrip("\n") == mutant.before, mutant
    lines[mutant.line - 1] = mutant.after + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    return original


def run_lua_mutant(mutant: Mutant, timeout_s: float) -> tuple[str, str]:
    """("killed" | "survived" | "timeout", the first failing test or "")."""
    path = ROOT / mutant.module
    original = _apply(path, mutant)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *LUA_PYTEST_ARGS, *LUA_TESTS],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "timeout", ""  # a hang is noticed: counted as killed
    finally:
        path.write_text(original, encoding="utf-8")
    if done.returncode == 0:
        return "survived", ""
    failed = re.search(r"^FAILED (\S+)", done.stdout, re.MULTILINE)
    return "killed", failed.group(1) if failed else done.stdout.strip().splitlines()[-1]


# ---- equivalents and the report -----------------------------------------------------------


def equivalents() -> dict[str, str]:
    """ "<module>:<line>: <kind>" → why no test can tell the mutant from the original."""
    data = tomllib.loads(EQUIVALENT.read_text(encoding="utf-8"))
    return {row["mutant"]: row["reason"] for row in data.get("equivalent", [])}


@dataclass
class Score:
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float:
        counted = self.mutants - self.equivalent
        return 100.0 * self.killed / counted if counted else 100.0


def report(scores: dict[str, Score], elapsed_s: float) -> str:
    lines = [
        f"{'module':44} {'mutants':>7} {'equiv':>5} {'killed':>6} {'survived':>8} {'score':>6}"
    ]
    for module, s in sorted(scores.items()):
        survived = len(s.survivors)
        lines.append(
            f"{module:44} {s.mutants:7} {s.equivalent:5} {s.killed:6} {survived:8} "
            f"{s.percent:5.1f}%"
        )
    total = Score(
        sum(s.mutants for s in scores.values()),
        sum(s.killed for s in scores.values()),
        sum(s.equivalent for s in scores.values()),
        [x for s in scores.values() for x in s.survivors],
    )
    lines.append(
        f"{'total':44} {total.mutants:7} {total.equivalent:5} {total.killed:6} "
        f"{len(total.survivors):8} {total.percent:5.1f}%   ({elapsed_s / 60:.1f} min)"
    )
    if total.survivors:
        lines.append("survivors:")
        lines.extend(f"  {name}" for name in total.survivors)
    return "\n".join(lines)


def _wanted(only: Sequence[str], *names: str) -> bool:
    return not only or any(n in only for n in names)


def run_lua(
    only: Sequence[str], timeout_s: float, scores: dict[str, Score], patterns: Sequence[str] = ()
) -> None:
    equiv = equivalents()
    files = sorted(LUA.glob("*.lua")) + sorted((LUA / "lib").glob("*.lua"))
    for path in files:
        if not _wanted(only, "lua", path.name, path.stem):
            continue
        for mutant in lua_mutants(path):
            if patterns and not _selected(mutant.name, patterns):
                continue
            score = scores.setdefault(mutant.module, Score())
            if mutant.name in equiv:
                score.mutants += 1
                score.equivalent += 1
                continue
            started = time.monotonic()
            outcome, test = run_lua_mutant(mutant, timeout_s)
            score.mutants += 1
            print(f"[mutate] {mutant.name}: {outcome} {test} ({time.monotonic() - started:.0f} s)",
                  flush=True)  # fmt: skip
            if outcome == "survived":
                score.survivors.append(
                    f"{mutant.name}    {mutant.after.strip() or '(line dropped)'}"
                )
            else:
                score.killed += 1


# ---- Python: mutmut, one area at a time ---------------------------------------------------


def _scratch_copy(area: str) -> Path:
    """The tracked tree (plus the venv's interpreter path) in build/mutate/<area>: mutmut
    writes its ``mutants/`` there and never touches the working tree."""
    scratch = SCRATCH / area
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            dst = scratch / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    # The Lua scripts as committed: a Lua run may be rewriting one in the working tree.
    archive = subprocess.run(["git", "archive", "HEAD", "lua"], cwd=ROOT, capture_output=True,
                             check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    return scratch


_ALSO_COPY = ["lua", "tests", "devtools", "migrations", "schema.sql", "bench", "scripts", "docs",
              "functions", "openapi.json", "terraform", "examples", "redocly.yaml"]  # fmt: skip


def _mutmut_config(paths: list[str], tests: list[str], jobs: int) -> str:
    def arr(xs: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{x}"' for x in xs) + "]"

    return (
        "\n[tool.mutmut]\n"
        f'source_paths = ["shared"]\n'
        f"only_mutate = {arr([p + '*' if p.endswith('/') else p for p in paths])}\n"
        f"also_copy = {arr(_ALSO_COPY)}\n"
        f"tests_dir = {arr(tests)}\n"
        f"pytest_add_cli_args = {arr(['-p', 'no:randomly', '-p', 'no:cacheprovider', '-q'])}\n"
        f"max_children = {jobs}\n"
    )


_RESULT = re.compile(r"^\s*([\w.]+__mutmut_\d+): (\w[\w ]*)$", re.MULTILINE)


def run_python(
    only: Sequence[str], jobs: int, scores: dict[str, Score], patterns: Sequence[str] = ()
) -> None:
    equiv = equivalents()
    for area, (paths, tests) in PY_AREAS.items():
        if not _wanted(only, "python", area):
            continue
        selected = _area_patterns(patterns, paths)
        if patterns and not selected:
            continue
        scratch = _scratch_copy(area)
        pyproject = scratch / "pyproject.toml"
        pyproject.write_text(
            pyproject.read_text(encoding="utf-8") + _mutmut_config(paths, tests, jobs),
            encoding="utf-8",
        )
        mutmut = str(Path(sys.executable).with_name("mutmut"))
        started = time.monotonic()
        subprocess.run([mutmut, "run", *selected], cwd=scratch,
                       check=False)  # fmt: skip
        results = subprocess.run(
            [mutmut, "results", "--all", "true"], cwd=scratch, capture_output=True, text=True,
            check=False,
        ).stdout  # fmt: skip
        print(f"[mutate] python {area}: {time.monotonic() - started:.0f} s", flush=True)
        for name, status in _RESULT.findall(results):
            if patterns and not _selected(name, patterns):
                continue
            module = _module_of(name, paths)
            score = scores.setdefault(module, Score())
            score.mutants += 1
            if name in equiv:
                score.equivalent += 1
            elif status.strip() in ("killed", "timeout", "segfault", "suspicious"):
                score.killed += 1
            else:
                score.survivors.append(f"{name}: {status.strip()}  (mutmut show {name})")


def _area_patterns(patterns: Sequence[str], paths: list[str]) -> list[str]:
    """The patterns that name a mutant of this area (mutmut refuses a filter that matches
    nothing). ``shared/services/`` → ``shared.services.``."""
    prefixes = [p.removesuffix(".py").removesuffix("/").replace("/", ".") for p in paths]
    return [p for p in patterns if any(p.startswith(x) or x.startswith(p.rstrip("*"))
                                       for x in prefixes)]  # fmt: skip


def _patterns(spec: str) -> list[str]:
    """``MUTATE_MUTANTS``: a comma list, or ``@file`` with one name or pattern a line (a
    previous run's survivors can be many)."""
    if spec.startswith("@"):
        spec = Path(spec[1:]).read_text(encoding="utf-8").replace("\n", ",")
    return [x.strip() for x in spec.split(",") if x.strip()]


def _selected(name: str, patterns: Sequence[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def _module_of(mutant: str, paths: list[str]) -> str:
    """``shared.api.auth.x_fn__mutmut_3`` → ``shared/api/auth.py``."""
    dotted = mutant.split(".x")[0].split(".x_")[0]
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        candidate = "/".join(parts[:i]) + ".py"
        if (ROOT / candidate).exists():
            return candidate
    return paths[0]


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    only = [x.strip() for x in os.environ.get("MUTATE_ONLY", "").split(",") if x.strip()]
    timeout_s = float(os.environ.get("MUTATE_TIMEOUT_S", "180"))
    jobs = int(os.environ.get("MUTATE_JOBS", "2"))
    floor = float(os.environ.get("MUTATE_FLOOR", "95"))
    patterns = _patterns(os.environ.get("MUTATE_MUTANTS", ""))
    started = time.monotonic()
    scores: dict[str, Score] = {}
    lua_names = (
        {"lua"} | {p.name for p in LUA.rglob("*.lua")} | {p.stem for p in LUA.rglob("*.lua")}
    )
    try:
        if not only or set(only) & lua_names:
            lua_patterns = [p for p in patterns if p.startswith("lua/")]
            run_lua(only if set(only) - {"lua"} else [], timeout_s, scores, lua_patterns)
        if not only or set(only) & ({"python"} | set(PY_AREAS)):
            run_python([x for x in only if x != "python"], jobs, scores, patterns)
    except KeyboardInterrupt:  # Ctrl-C: the script under test is already restored
        print("[mutate] interrupted: the scores below cover the mutants run so far")
    print(report(scores, time.monotonic() - started))
    low = [m for m, s in scores.items() if s.percent < floor]
    if low:
        print(f"under the {floor:.0f}% floor: {', '.join(sorted(low))}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
