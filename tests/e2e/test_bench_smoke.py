"""``python -m bench`` runs end to end at a tiny scale: a benchmark that no longer runs
(an API it calls changed) fails here, not on the next person's ``make bench``. Figures
are not checked: they are not tests (bench/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import servers

ROOT = Path(__file__).resolve().parents[2]
# coldstart and imports time fresh processes for minutes; everything else runs here.
SECTIONS = "roundtrips,admission,create,worker,library,export,network"


@pytest.mark.slow
def test_the_benchmarks_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {
        **os.environ,
        "BENCH_SCALE": "0.02",
        "BENCH_ONLY": SECTIONS,
        "BENCH_LIBRARY_DELETED": "100",
        "BENCH_RESULTS": str(out),
        # A run hiding the machine's servers hides them from the bench too.
        "BENCH_FORCE_EMBEDDED": "1" if servers.force_embedded() else "",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    for section in SECTIONS.split(","):
        assert f"[bench] {section} done" in done.stderr, done.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures
