"""Figures, the printed table and ``build/bench/results.json``."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["Figure", "Report", "machine", "pct"]

# Machine-specific and rewritten by every run: under the git-ignored build/, never tracked.
RESULTS_PATH = Path(__file__).resolve().parents[1] / "build" / "bench" / "results.json"


def pct(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; nan when empty."""
    if not samples:
        return math.nan
    s = sorted(samples)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def machine() -> dict[str, Any]:
    ram_gib: float | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Figure:
    """One row: ``value`` (``value2`` = p99 for "p50 / p99" rows) beside its bound or goal.

    ``ratio`` is value / bound (p50 / bound p50 for latency pairs). For a goal it says
    how much of the goal is used (≤ 1 meets it); for a throughput bound, the fraction of
    the bound reached; for a latency bound, how many times slower than the bound.
    """

    section: str
    name: str
    value: float
    unit: str
    bound: float | None = None
    bound_label: str = ""
    value2: float | None = None
    bound2: float | None = None
    goal: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.bound is None or not self.bound or math.isnan(self.value):
            return None
        return self.value / self.bound

    def value_text(self) -> str:
        return _pair(self.value, self.value2, self.unit)

    def bound_text(self) -> str:
        if self.bound is None:
            return self.bound_label or "-"
        text = _pair(self.bound, self.bound2, self.unit)
        if self.goal:
            text = f"≤ {text}"
        return f"{text} ({self.bound_label})" if self.bound_label else text

    def ratio_text(self) -> str:
        r = self.ratio
        return "-" if r is None else f"{r:.2f}×"


def _num(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _pair(a: float, b: float | None, unit: str) -> str:
    text = _num(a) if b is None else f"{_num(a)} / {_num(b)}"
    return f"{text} {unit}".rstrip()


class Report:
    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.figures: list[Figure] = []
        self.extra: dict[str, Any] = {}
        self.started = datetime.now(UTC)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def table(self) -> str:
        header = ("figure", "value", "bound/goal", "ratio")
        rows = [(f.name, f.value_text(), f.bound_text(), f.ratio_text()) for f in self.figures]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

        def line(cells: Sequence[str]) -> str:
            left = cells[0].ljust(widths[0])
            rest = [c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in
                    enumerate(zip(cells[1:], widths[1:], strict=True), start=1)]  # fmt: skip
            return " | ".join([left, *rest])

        rule = "-+-".join("-" * w for w in widths)
        out = [line(header), rule]
        section = None
        for f, row in zip(self.figures, rows, strict=True):
            if f.section != section:
                if section is not None:
                    out.append(rule)
                section = f.section
            out.append(line(row))
        return "\n".join(out)

    def write_json(self, path: Path = RESULTS_PATH) -> Path:
        payload = {
            "date": self.started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "scale": self.scale,
            "figures": [
                {
                    **{k: v for k, v in asdict(f).items() if k != "details"},
                    "ratio": f.ratio,
                    "value_text": f.value_text(),
                    "bound_text": f.bound_text(),
                    "details": f.details,
                }
                for f in self.figures
            ],
            "extra": self.extra,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
