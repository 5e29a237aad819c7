"""Fire many ``POST /v1/create`` at one URL from threads; also runnable as a process.

    python -m tests.load._hammer URL TOKEN THREADS PER_THREAD START_AT_EPOCH_S

prints one JSON list of ``[status, error code | null, Retry-After | null]`` per request.
Every thread waits for ``START_AT`` so threads of several processes collide.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import httpx

Result = tuple[int, str | None, str | None]
BODY = {"brief": "3 reasons to drink water, upbeat", "platform": "tiktok"}


def _one(http: httpx.Client, token: str) -> Result:
    try:
        r = http.post("/v1/create", json=BODY, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:  # counted, and failed on by the test
        return (0, type(exc).__name__, None)
    code: str | None = None
    if r.status_code >= 400:
        try:
            code = r.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "NOT_SPEC_SHAPED"
    return (r.status_code, code, r.headers.get("Retry-After"))


def hammer(url: str, token: str, threads: int, per_thread: int, start_at: float) -> list[Result]:
    """``threads`` × ``per_thread`` creates, all threads released at ``start_at``."""
    results: list[Result] = []
    lock = threading.Lock()

    def run() -> None:
        mine: list[Result] = []
        with httpx.Client(base_url=url, timeout=60) as http:
            time.sleep(max(0.0, start_at - time.time()))
            for _ in range(per_thread):
                mine.append(_one(http, token))
        with lock:
            results.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def main(argv: list[str]) -> None:
    url, token, threads, per_thread, start_at = argv
    out: Any = hammer(url, token, int(threads), int(per_thread), float(start_at))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
