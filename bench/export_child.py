"""Child of ``bench/export.py``: export one account and print its peak RSS as JSON.

``python -m bench.export_child DATABASE_URL OWNER stream|joined``
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import UTC, datetime

from shared.api.export import export_document as export_account
from shared.db import Database


def _peak_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def main() -> int:
    url, owner, mode = sys.argv[1:4]
    db = Database(url)
    now = datetime.now(UTC)
    for _ in export_account(db, "bench-export-nobody", now):  # warm every code path
        pass
    baseline = _peak_kb()
    t0 = time.perf_counter()
    size = 0
    if mode == "stream":
        for chunk in export_account(db, owner, now):
            size += len(chunk)
    else:
        document = b"".join(export_account(db, owner, now))
        size = len(document)
    seconds = time.perf_counter() - t0
    db.close()
    print(json.dumps({"baseline_kb": baseline, "peak_kb": _peak_kb(), "bytes": size,
                      "seconds": seconds, "mode": mode}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
