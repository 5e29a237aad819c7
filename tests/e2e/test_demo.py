"""`make demo` from nothing configured: embedded Postgres + Redis, every step succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_runs_end_to_end_on_embedded_servers(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "UPSTASH_", "AUTH_", "QSTASH_"))
        and k not in ("APP_ENV", "PORT", "WORKER_URL", "AI_PROVIDER", "QUEUE_BACKEND")
    }
    env["LOCAL_DATA_DIR"] = str(tmp_path / "local")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Demo finished: every step succeeded." in result.stdout
    for step in ("create (3 variants)", "regenerate (targeted: hook)", "save to library", "usage"):
        assert f"[ok ] {step}" in result.stdout
