"""One trace from the API to the worker, and nothing secret in any log line.

The full flow runs for real: POST /v1/create → local queue (signed HTTP delivery on its
own thread, like QStash) → /worker/generate → the fake MiniMax. Every log record of every
logger is captured as the JSON line production would print.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devtools.fake_minimax import FakeMiniMax, ok, variant
from devtools.local_queue import LocalQueue
from devtools.local_server import LocalServer
from shared.bootstrap import Container
from shared.observability.logging import JsonFormatter
from tests.support.e2e import Api
from tests.support.worker_env import MINIMAX_KEY, SIGNING_CURRENT, SIGNING_NEXT, WorkerEnv


class _JsonLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[_JsonLines]:
    """Every record of every logger at INFO and above, formatted as JSON lines."""
    handler = _JsonLines()
    root, reel = logging.getLogger(), logging.getLogger("reel")
    levels = root.level, reel.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    reel.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(levels[0])
    reel.setLevel(levels[1])


@pytest.fixture
def flow(
    base_env: dict[str, str],
    container: Container,
    client: httpx.Client,
    server: LocalServer,
    use_container: Callable[[Container], Container],
    api: Callable[..., Api],
    captured: _JsonLines,
) -> Iterator[Callable[[], dict[str, Any]]]:
    """Runs create → queue → worker once; returns the ids and the secrets involved."""
    tag = secrets.token_hex(6)
    secret_texts = {
        "brief": f"Otters-{tag} hold hands while sleeping so they do not drift apart",
        "hook": f"Hook-{tag}: the cutest safety rule in nature",
        "script": f"Script-{tag}: otters link paws, wrap in kelp, and nap together.",
        "caption": f"Caption-{tag} sleepy otters",
    }
    with (
        FakeMiniMax() as fake,
        LocalQueue(
            worker_url=server.url,
            signing_key=SIGNING_CURRENT,
            backoff_base_s=0.05,
            backoff_cap_s=0.2,
        ) as queue,
    ):
        env = WorkerEnv.build(base_env, container, client, fake, queue=queue)
        use_container(env.container)
        fake.push(
            ok(
                [
                    variant(
                        1,
                        hook=secret_texts["hook"],
                        script=secret_texts["script"],
                        caption=secret_texts["caption"],
                    )
                ]
            )
        )

        def run() -> dict[str, Any]:
            user = api("basic")
            request_id = f"trace-{tag}"
            r = client.post(
                "/v1/create",
                json={"brief": secret_texts["brief"], "platform": "tiktok"},
                headers={**user.headers, "X-Request-Id": request_id},
            )
            assert r.status_code == 202, r.text
            generation_id: str = r.json()["generation_id"]
            gen = user.wait(generation_id)
            assert gen["status"] == "succeeded"
            assert gen["variants"][0]["hook"] == secret_texts["hook"]
            assert queue.join_idle(10)
            return {
                "request_id": request_id,
                "generation_id": generation_id,
                "bearer": user.headers["Authorization"].removeprefix("Bearer "),
                "secrets": secret_texts,
            }

        yield run
        env.llm.close()


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def _one(events: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def test_one_request_id_traces_create_through_the_worker(
    flow: Callable[[], dict[str, Any]], captured: _JsonLines
) -> None:
    ids = flow()
    rid, gid = ids["request_id"], ids["generation_id"]
    events = _events(captured.lines)

    created = _one(events, event="request_finished", route="/v1/create", request_id=rid)
    assert created["status"] == 202
    queued = _one(events, event="job_queued", request_id=rid)
    assert queued["generation_id"] == gid
    for name in ("job_started", "job_completed"):
        line = _one(events, event=name, generation_id=gid)
        assert line["request_id"] == rid
        assert line["logger"] == "reel.worker"
    delivered = _one(events, event="request_finished", route="/worker/generate")
    assert (delivered["request_id"], delivered["status"]) == (rid, 200)
    # The provider call is logged inside the job, so it carries the same ids.
    ai = [e for e in events if e["logger"] == "reel.ai"]
    assert ai
    assert all((e.get("request_id"), e.get("generation_id")) == (rid, gid) for e in ai)
    # And every line that names the generation carries the request id.
    assert all(e.get("request_id") == rid for e in events if e.get("generation_id") == gid)


def test_no_brief_output_token_or_key_in_any_log_line(
    flow: Callable[[], dict[str, Any]], captured: _JsonLines
) -> None:
    ids = flow()
    assert len(captured.lines) > 10
    forbidden = {
        **ids["secrets"],
        "bearer token": ids["bearer"],
        "minimax key": MINIMAX_KEY,
        "qstash current signing key": SIGNING_CURRENT,
        "qstash next signing key": SIGNING_NEXT,
    }
    for line in captured.lines:
        for what, text in forbidden.items():
            assert text not in line, f"{what} leaked into a log line: {line[:200]}"
    # Fragments too: a truncated brief or hook is still user content.
    for what in ("brief", "hook", "script", "caption"):
        fragment = ids["secrets"][what][:16]
        assert not [line for line in captured.lines if fragment in line], what


def test_create_request_finished_line_names_the_generation(
    flow: Callable[[], dict[str, Any]], captured: _JsonLines
) -> None:
    ids = flow()
    created = _one(
        _events(captured.lines),
        event="request_finished",
        route="/v1/create",
        request_id=ids["request_id"],
    )
    assert created.get("generation_id") == ids["generation_id"]
