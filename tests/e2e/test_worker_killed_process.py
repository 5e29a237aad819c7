"""A real worker process killed with SIGKILL in the middle of a job (no ``finally`` runs).

The dev server (``python -m scripts.dev_server``) runs as its own process on the run's
Postgres and Redis, with MiniMax answering never. Once it is mid-job it is killed -9;
the generation is left running with its lease held, exactly what a crashed Cloud Function
instance leaves. QStash's redelivery inside the max runtime is told to come back later;
the one after it takes the job over and finishes it exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from devtools.fake_minimax import delayed, ok
from devtools.net import free_port
from shared.bootstrap import Container
from shared.queue import WORKER_GENERATE_PATH, sign_qstash
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import (
    MINIMAX_KEY,
    SIGNING_CURRENT,
    SIGNING_NEXT,
    ShiftedClock,
    WorkerEnv,
)

RUNTIME_S = 30
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    # The first call never gets an answer in time; the take-over's call gets a good one.
    env = make_worker_env(default=ok(), max_job_runtime_s=RUNTIME_S)
    env.fake.push(delayed(ok(), 120))
    return env


@pytest.fixture
def worker_process(
    base_env: dict[str, str], env: WorkerEnv, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child_env = {
        **os.environ,
        **base_env,
        "PORT": str(port),
        "WORKER_URL": url,
        "AI_PROVIDER": "minimax",
        "AI_API_KEY": MINIMAX_KEY,
        "AI_BASE_URL": env.fake.url,
        "MAX_JOB_RUNTIME_S": str(RUNTIME_S),
        "QSTASH_CURRENT_SIGNING_KEY": SIGNING_CURRENT,
        "QSTASH_NEXT_SIGNING_KEY": SIGNING_NEXT,
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scripts.dev_server", "--port", str(port)],
            cwd=REPO,
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the worker process did not start"
            time.sleep(0.05)
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_worker_killed_mid_job_is_taken_over_and_finished_once(
    env: WorkerEnv,
    worker_process: tuple[subprocess.Popen[bytes], str, Path],
    api: Callable[..., Api],
    use_container: Callable[[Container], Container],
) -> None:
    proc, url, log = worker_process
    user = api("basic")  # one concurrent job: a leaked lease would block the user
    generation_id = env.create(user.headers)
    job = env.job(generation_id)
    body = job.to_body()
    signature = sign_qstash(body, url + WORKER_GENERATE_PATH, SIGNING_CURRENT)

    with ThreadPoolExecutor(1) as pool:
        delivery = pool.submit(
            httpx.post,
            url + WORKER_GENERATE_PATH,
            content=body,
            headers={"Content-Type": "application/json", "Upstash-Signature": signature},
            timeout=60,
        )
        env.wait_for(lambda: env.fake.calls == 1, timeout_s=20)  # mid-job, at MiniMax
        assert env.generation(generation_id)["status"] == "running"

        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        with pytest.raises(httpx.HTTPError):
            delivery.result(timeout=10)  # QStash saw no answer: it will redeliver

    started = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"job_started"' in line
    ]
    assert [(e["generation_id"], e["request_id"]) for e in started] == [
        (generation_id, job.request_id)
    ]
    # What the crash left: running, attempt 1, unit charged, lease held.
    assert env.generation(generation_id)["attempts"] == 1
    assert env.usage(user.headers) == (1, 1)

    # QStash's redelivery inside the max runtime: the dead worker might still be alive.
    r = env.deliver(job)
    assert r.status_code == 503, r.text
    assert "Retry-After" in r.headers
    assert env.fake.calls == 1

    # The next one, after the max runtime: taken over and finished exactly once.
    use_container(env.with_clock(ShiftedClock(timedelta(seconds=RUNTIME_S + 5))))
    assert env.deliver(job).json() == {"result": "succeeded"}
    assert env.deliver(job).json() == {"result": "already_terminal"}
    use_container(env.container)

    assert env.fake.calls == 2
    gen = env.generation(generation_id)
    assert (gen["status"], gen["attempts"]) == ("succeeded", 2)
    assert env.variant_count(generation_id) == 1
    assert [row["billable"] for row in env.ledger(generation_id)] == [True]
    assert env.usage(user.headers) == (1, 0)  # charged once, released: free to go again
    env.assert_books(user.headers, user.user_id)
