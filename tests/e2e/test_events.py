"""GET /v1/generations/{id}/events through the real HTTP server with a raw HTTP client:
the events of a job as it runs (and how long after its Postgres move each arrives), a
reconnect with ``Last-Event-ID``, a job already finished, a cancel, and the stream closing
itself before the function's timeout with a ``retry`` hint."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx
import pytest

from devtools.fake_minimax import delayed, ok
from shared.clock import SystemClock
from tests.e2e.api_support import assert_error
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import WorkerEnv


def _path(generation_id: str) -> str:
    return f"/v1/generations/{generation_id}/events"


def _end(env: WorkerEnv, generation_id: str, headers: Mapping[str, str]) -> None:
    """Cancel a job left queued: it holds a provider slot the session's tests share."""
    r = env.http.post(f"/v1/generations/{generation_id}/cancel", headers=dict(headers))
    assert r.status_code == 200, r.text


def _read(
    http: httpx.Client, generation_id: str, headers: Mapping[str, str]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """Read the stream to its end: every block as {"id", "event", "data", "retry",
    "comment", "at"} (``at``: wall-clock arrival, seconds)."""
    blocks: list[dict[str, Any]] = []
    with http.stream("GET", _path(generation_id), headers=dict(headers), timeout=60) as r:
        block: dict[str, Any] = {}
        for line in r.iter_lines():
            if line == "":
                if block:
                    blocks.append({**block, "at": time.time()})
                block = {}
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            key = name or "comment"
            block[key] = json.loads(value) if key == "data" else value
    return r, blocks


def _events(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(b["id"], b["event"]) for b in blocks if "event" in b]


def _ts(value: datetime) -> float:
    return value.timestamp()


def test_stream_follows_a_job_queued_running_succeeded_and_measures_the_lag(
    make_worker_env: WorkerEnvFactory, api: Callable[..., Api]
) -> None:
    """Each move's event arrives within ~one poll (250 ms) of its Postgres time."""
    env: WorkerEnv = make_worker_env(clock=SystemClock())
    user = api("pro")
    lags: dict[str, list[float]] = {"running": [], "succeeded": []}
    for _ in range(8):
        env.fake.push(delayed(ok(count=2), 0.6))
        generation_id = env.create(user.headers, variants=2)
        got: list[Any] = []
        reader = threading.Thread(
            target=lambda gid=generation_id: got.extend(_read(env.http, gid, user.headers))
        )
        reader.start()
        time.sleep(0.3)  # the stream is open and waiting on the queued job
        assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}
        reader.join(10)
        response, blocks = got
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert _events(blocks) == [("1", "queued"), ("2", "running"), ("3", "succeeded")]
        final = blocks[-1]["data"]
        assert final["status"] == "succeeded"
        assert len(final["variants"]) == 2
        [[started, completed]] = env.sql(
            "SELECT started_at, completed_at FROM generations WHERE id = CAST(:g AS uuid)",
            g=generation_id,
        )
        lags["running"].append(blocks[1]["at"] - _ts(started))
        lags["succeeded"].append(blocks[2]["at"] - _ts(completed))
    every = lags["running"] + lags["succeeded"]
    print(  # the figures the docs quote
        f"\nevent lag after the Postgres move, {len(every)} events: "
        f"p50 {statistics.median(every) * 1000:.0f} ms, max {max(every) * 1000:.0f} ms; "
        f"running p50 {statistics.median(lags['running']) * 1000:.0f} ms, "
        f"succeeded p50 {statistics.median(lags['succeeded']) * 1000:.0f} ms"
    )
    assert min(every) > -0.05, "an event cannot come before its move"
    # One poll period (250 ms) plus the reads: measured p50 ~190 ms, max ~240 ms. The
    # bounds leave room for a loaded CI machine; a stream that missed polls (or read
    # Postgres on every one) would be far past them.
    assert statistics.median(every) < 0.3
    assert max(every) < 0.75


def test_reconnect_with_last_event_id_sends_only_what_came_after(
    make_worker_env: WorkerEnvFactory, api: Callable[..., Api]
) -> None:
    env = make_worker_env()
    user = api("pro")
    env.fake.push(ok())
    generation_id = env.create(user.headers)
    assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}

    _, everything = _read(env.http, generation_id, user.headers)
    assert _events(everything) == [("1", "queued"), ("2", "running"), ("3", "succeeded")]
    _, rest = _read(env.http, generation_id, {**user.headers, "Last-Event-ID": "1"})
    assert _events(rest) == [("2", "running"), ("3", "succeeded")]
    assert rest[-1]["data"] == everything[-1]["data"]
    done = env.http.get(_path(generation_id), headers={**user.headers, "Last-Event-ID": "3"})
    assert done.status_code == 204  # EventSource stops reconnecting
    other = api("pro")
    assert_error(env.http.get(_path(generation_id), headers=other.headers), 404, "NOT_FOUND")


def test_a_cancel_is_an_event_and_ends_the_stream(
    make_worker_env: WorkerEnvFactory, api: Callable[..., Api]
) -> None:
    env = make_worker_env()
    user = api("pro")
    generation_id = env.create(user.headers)
    got: list[Any] = []
    reader = threading.Thread(
        target=lambda: got.extend(_read(env.http, generation_id, user.headers))
    )
    reader.start()
    time.sleep(0.3)
    r = env.http.post(f"/v1/generations/{generation_id}/cancel", headers=user.headers)
    assert r.status_code == 200, r.text
    reader.join(10)
    _, blocks = got
    assert _events(blocks) == [("1", "queued"), ("3", "cancelled")]
    assert blocks[-1]["data"]["error"]["code"] == "CANCELLED"


@pytest.mark.parametrize("resume", [False, True])
def test_the_stream_closes_before_the_function_timeout_with_a_retry_hint(
    make_worker_env: WorkerEnvFactory, api: Callable[..., Api], resume: bool
) -> None:
    env = make_worker_env(events_max_open_s=1)
    user = api("pro")
    generation_id = env.create(user.headers)  # never delivered: it stays queued
    headers = {**user.headers, **({"Last-Event-ID": "1"} if resume else {})}
    opened = time.monotonic()

    response, blocks = _read(env.http, generation_id, headers)

    assert response.status_code == 200
    assert 0.9 < time.monotonic() - opened < 5
    assert _events(blocks) == ([] if resume else [("1", "queued")])
    assert blocks[-1]["retry"] == "1000"
    _end(env, generation_id, user.headers)


def test_the_token_may_come_as_a_query_parameter_on_the_stream_only(
    make_worker_env: WorkerEnvFactory, api: Callable[..., Api]
) -> None:
    """An EventSource cannot send headers; no other route reads ``access_token``."""
    env = make_worker_env(events_max_open_s=1)
    user = api("pro")
    generation_id = env.create(user.headers)
    token = user.headers["Authorization"].removeprefix("Bearer ")

    with env.http.stream("GET", _path(generation_id), params={"access_token": token}) as r:
        assert r.status_code == 200
        assert "event: queued" in r.read().decode()
    usage = env.http.get("/v1/usage", params={"access_token": token})
    assert_error(usage, 401, "UNAUTHENTICATED")
    bad = env.http.get(_path(generation_id), params={"access_token": "not-a-token"})
    assert_error(bad, 401, "UNAUTHENTICATED")
    _end(env, generation_id, user.headers)
