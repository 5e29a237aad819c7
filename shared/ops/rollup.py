"""Run the daily usage rollup by hand (the QStash schedule normally does it).

    python -m shared.ops.rollup                                  # what the schedule does
    python -m shared.ops.rollup --from 2026-01-01 --to 2026-01-31  # backfill a range

A backfill recomputes exactly those days (never today, which is still open). It moves
the watermark only when it joins up with the days already complete; spend anomalies are
checked only for days a run completes for the first time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date

from shared.services import reporting

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m shared.ops.rollup", description=__doc__.split("\n")[0]
    )
    p.add_argument("--from", dest="start", type=date.fromisoformat, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=date.fromisoformat, metavar="YYYY-MM-DD")
    args = p.parse_args(argv)
    from shared.bootstrap import Container
    from shared.config import get_settings

    settings = get_settings()
    container = Container(settings)
    try:
        result = reporting.run_rollup(
            container.db,
            container.now(),
            settings.spend_alert_micro_usd,
            start=args.start,
            end=args.end,
        )
    finally:
        container.close()
    if result.start is None:
        print(f"nothing to do; rolled through {result.rolled_through}")
        return 0
    print(
        f"recomputed {result.start} .. {result.end}: {result.rows} rows; "
        f"rolled through {result.rolled_through}; {len(result.anomalies)} spend anomalies"
    )
    for a in result.anomalies:
        print(
            f"  spend_anomaly {a.day} {a.user_id}: {a.cost_micro_usd / 1e6:.6f} USD "
            f"(median {a.median_micro_usd / 1e6:.6f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
