"""A long-running command of the project's own (``make dev``, the dev server) started in a
session of its own, read until it says it is ready, and stopped with everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["running_until"]


@contextmanager
def running_until(
    cmd: list[str],
    ready: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stop_timeout_s: float = 60,
) -> Iterator[list[str]]:
    """Start ``cmd`` in its own session and read its output until a line starts with
    ``ready`` (or the output ends, or ``timeout_s`` passes at a line); yield the lines read
    (the caller asserts on the last). On exit: SIGTERM to the session, SIGKILL if it lingers."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(ready) or time.monotonic() > deadline:
                break
        yield seen
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
