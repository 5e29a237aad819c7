"""Print the cost table for a range: the same rollup + ledger query as GET /v1/admin/costs.

    python -m shared.ops.costs --from 2026-11-01 --to 2026-11-30 --group-by plan,model
    python -m shared.ops.costs --month 2026-11 --group-by user --json

Reads ``DATABASE_URL`` like the functions (in development, ``python -m devtools.compose
shared.ops.costs …`` points it at the embedded Postgres when unset). Days are UTC;
``--to`` defaults to today, ``--from`` to the first day of ``--to``'s month.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from shared.errors import ValidationFailed
from shared.services import reporting

__all__ = ["format_table", "main"]

_COUNTERS = ("generations", "failed", "prompt_tokens", "completion_tokens")


def _usd(micro: int) -> str:
    return f"{micro / 1_000_000:,.6f}"


def format_table(report: reporting.CostReport) -> str:
    """A plain-text table: one line per group, costliest first, then the totals."""
    header = [*report.group_by, *_COUNTERS, "cost_usd"]
    body = [
        [*line.keys, *(f"{getattr(line, c):,}" for c in _COUNTERS), _usd(line.cost_micro_usd)]
        for line in report.rows
    ]
    t = report.totals
    total = [
        *(["TOTAL"] + [""] * (len(report.group_by) - 1) if report.group_by else []),
        *(f"{getattr(t, c):,}" for c in _COUNTERS),
        _usd(t.cost_micro_usd),
    ]
    if not report.group_by:
        header, total = ["", *header], ["TOTAL", *total]
        body = []
    widths = [max(len(row[i]) for row in (header, *body, total)) for i in range(len(header))]
    keys = len(header) - len(_COUNTERS) - 1

    def fmt(row: Sequence[str]) -> str:
        cells = [
            c.ljust(w) if i < keys else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    mark = report.rolled_through.isoformat() if report.rolled_through else "never"
    title = (
        f"Costs {report.range.start} .. {report.range.end} (UTC) by "
        f"{','.join(report.group_by) or 'nothing (totals)'}; rollup through {mark}, "
        "later days read from the ledger"
    )
    return "\n".join([title, "", fmt(header), rule, *(fmt(r) for r in body), rule, fmt(total)])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shared.ops.costs", description=__doc__.split("\n")[0]
    )
    p.add_argument("--from", dest="start", metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="end", metavar="YYYY-MM-DD")
    p.add_argument("--month", metavar="YYYY-MM", help="a whole UTC month (instead of --from/--to)")
    p.add_argument(
        "--group-by",
        default=",".join(reporting.DEFAULT_GROUP_BY),
        help=f"comma-separated subset of {','.join(reporting.GROUP_NAMES)}; '' for totals only",
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON instead")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from shared.bootstrap import Container
    from shared.config import get_settings

    container = Container(get_settings())
    try:
        report = reporting.report_costs(
            container.db, container.now(), month=args.month, start=args.start, end=args.end,
            group_by=args.group_by,
        )  # fmt: skip
    except ValidationFailed as exc:
        fields = exc.details.get("fields", [])
        print(
            f"error: {fields[0]['loc'][-1]}: {fields[0]['msg']}" if fields else exc, file=sys.stderr
        )
        return 2
    finally:
        container.close()
    print(json.dumps(reporting.costs_json(report), indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
