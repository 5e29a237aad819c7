"""``make mutate``'s own logic: the Lua mutator, the mutant filter and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import mutate


def test_the_lua_mutator_flips_drops_and_shifts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        "if used + n > limit then return 0 end -- a > in a comment stays\n"
        "redis.call('PEXPIRE', key, ttl)\n"
        "local left = limit - 1\n"
    )
    monkeypatch.setattr(mutate, "ROOT", tmp_path)
    (tmp_path / "lua").mkdir()
    path = tmp_path / "lua" / "probe.lua"
    path.write_text(text, encoding="utf-8")
    kinds = [(m.line, m.kind, m.after) for m in mutate.lua_mutants(path)]
    flipped = "if used + n >= limit then return 0 end -- a > in a comment stays"
    assert (1, "flip > -> >=", flipped) in kinds
    assert (2, "drop line", "") in kinds
    assert (3, "off-by-one - 1 -> - 0", "local left = limit - 0") in kinds
    assert not [k for k in kinds if k[0] == 1 and k[1] == "drop line"]


def test_the_filter_keeps_an_areas_own_patterns_only() -> None:
    worker = ["shared/services/worker.py", "shared/services/job_end.py"]
    billing = ["shared/billing/", "shared/plans.py"]
    patterns = ["shared.services.worker.x_run_job*", "shared.billing.packs.x_pack_credit__mutmut_3"]
    assert mutate._area_patterns(patterns, worker) == ["shared.services.worker.x_run_job*"]
    assert mutate._area_patterns(patterns, billing) == [
        "shared.billing.packs.x_pack_credit__mutmut_3"
    ]
    assert mutate._area_patterns(patterns, ["shared/api/auth.py"]) == []
    assert mutate._selected("shared.services.worker.x_run_job__mutmut_12", patterns)
    assert not mutate._selected("shared.services.worker.x_sweep__mutmut_1", patterns)


@pytest.mark.parametrize(
    ("mutant", "module"),
    [
        ("shared.api.auth.x_decode__mutmut_3", "shared/api/auth.py"),
        ("shared.enforcement.scripts.admission.x__ticket__mutmut_7",
         "shared/enforcement/scripts/admission.py"),
        ("shared.services.job_end.x_fail__mutmut_1", "shared/services/job_end.py"),
    ],
)  # fmt: skip
def test_a_mutant_is_counted_under_its_module(mutant: str, module: str) -> None:
    assert mutate._module_of(mutant, ["shared/"]) == module


def test_the_report_counts_equivalents_out_of_the_score() -> None:
    scores = {
        "lua/a.lua": mutate.Score(mutants=10, killed=8, equivalent=2),
        "lua/b.lua": mutate.Score(mutants=4, killed=3, survivors=["lua/b.lua:3: drop line"]),
    }
    text = mutate.report(scores, 90.0)
    assert "lua/a.lua" in text
    assert "100.0%" in text
    assert "75.0%" in text
    total = next(line for line in text.splitlines() if line.startswith("total"))
    assert total.split()[1:6] == ["14", "2", "11", "1", "91.7%"]
    assert "(1.5 min)" in total
    assert text.rstrip().endswith("lua/b.lua:3: drop line")


def test_the_mutants_can_come_from_a_file(tmp_path: Path) -> None:
    listed = tmp_path / "survivors.txt"
    listed.write_text("shared.api.auth.x_a__mutmut_1\n\nshared.api.auth.x_b*\n", encoding="utf-8")
    assert mutate._patterns(f"@{listed}") == [
        "shared.api.auth.x_a__mutmut_1",
        "shared.api.auth.x_b*",
    ]
    assert mutate._patterns(" a , b ,") == ["a", "b"]
    assert mutate._patterns("") == []


def test_each_equivalent_is_named_once_with_a_reason() -> None:
    import tomllib

    rows = tomllib.loads(mutate.EQUIVALENT.read_text(encoding="utf-8"))["equivalent"]
    names = [row["mutant"] for row in rows]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    assert [n for n, row in zip(names, rows, strict=True) if len(row["reason"].split()) < 8] == []


def test_two_mutants_of_one_kind_on_one_line_have_two_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mutate, "ROOT", tmp_path)
    (tmp_path / "lua").mkdir()
    path = tmp_path / "lua" / "probe.lua"
    path.write_text("if a < b or (a == b and c < d) then x() end\n", encoding="utf-8")
    names = [m.name for m in mutate.lua_mutants(path)]
    assert "lua/probe.lua:1: flip < -> <=" in names
    assert "lua/probe.lua:1: flip < -> <= #2" in names
    assert len(names) == len(set(names))
