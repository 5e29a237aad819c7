"""End-to-end fixtures: the real local server (same entry points as deployed) on the
run's Postgres database and Redis prefix, with the local queue and offline writer.

A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``): tests/e2e, tests/load and
tests/rehearsal use the same fixtures without importing them; test modules import only
the plain names (``Api``, ``WorkerEnvFactory``, ``RemoteServer``, ``REHEARSAL_STATE``).

The base-URL switch: with ``E2E_REHEARSAL`` naming a running rehearsal's state file
(``build/rehearse/rehearsal.json``, see ``make rehearse-test``), ``server``, ``client``,
``token`` and ``api`` talk to its gateway instead, with RS256 tokens from its issuer; run
the tests marked ``rehearsal`` (``-m rehearsal``), which need nothing in-process.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.compose import dev_container
from devtools.devtoken import mint_dev_token
from devtools.fake_minimax import FakeMiniMax, Responder, Scripted
from devtools.local_server import LocalServer
from shared.bootstrap import Container, set_container
from shared.config import Settings, load_settings
from tests.support.clock import PinnableClock
from tests.support.worker_env import WorkerEnv

WorkerEnvFactory = Callable[..., WorkerEnv]

REHEARSAL_STATE = os.environ.get("E2E_REHEARSAL", "")


@dataclass(frozen=True)
class RemoteServer:
    """A server this process did not start (the rehearsal's gateway)."""

    url: str


def rehearsal_state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(Path(REHEARSAL_STATE).read_text(encoding="utf-8"))
    return state


@pytest.fixture(scope="session")
def server() -> Iterator[LocalServer | RemoteServer]:
    if REHEARSAL_STATE:
        yield RemoteServer(rehearsal_state()["gateway_url"])
        return
    srv = LocalServer(0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def base_env(
    database_url: str, redis_url: str, run_prefix: str, server: LocalServer
) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"{run_prefix}e",
        "WORKER_URL": server.url,
        "PORT": str(server.port),
        "QUEUE_BACKEND": "local",
        "AI_PROVIDER": "offline",
        "CORS_ALLOWED_ORIGINS": "https://app.example.com",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def settings(base_env: dict[str, str]) -> Settings:
    return load_settings(base_env)


@pytest.fixture(scope="session")
def container(settings: Settings) -> Iterator[Container]:
    c = dev_container(settings, clock=PinnableClock())
    set_container(c)
    yield c
    c.close()
    set_container(None)


@pytest.fixture
def pinned_clock(request: pytest.FixtureRequest) -> Iterator[PinnableClock | None]:
    """Pin the server's "now" (and every derived container's) for one test: the test's
    admissions, usage reads and Postgres seeds then share one hour and one month.

    Against the rehearsal there is nothing in-process to pin: its functions keep real
    time (a run straddling a month boundary could miscount there)."""
    if REHEARSAL_STATE:
        yield None
        return
    container: Container = request.getfixturevalue("container")
    clock = container.clock
    assert isinstance(clock, PinnableClock)
    clock.pin()
    yield clock
    clock.unpin()


@pytest.fixture
def use_container(container: Container) -> Iterator[Callable[[Container], Container]]:
    """Swap in another container for one test (restored afterwards)."""

    def swap(c: Container) -> Container:
        set_container(c)
        return c

    yield swap
    set_container(container)


@pytest.fixture
def client(
    server: LocalServer | RemoteServer, request: pytest.FixtureRequest
) -> Iterator[httpx.Client]:
    if not REHEARSAL_STATE:
        request.getfixturevalue("container")  # the local server serves from it
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def token(request: pytest.FixtureRequest) -> Callable[..., str]:
    if REHEARSAL_STATE:
        from devtools.jwks_server import Issuer

        issuer = Issuer.load(Path(rehearsal_state()["issuer_file"]))
        return lambda user_id, *, admin=False, **kw: issuer.mint(user_id, admin=admin)
    settings: Settings = request.getfixturevalue("settings")

    def make(user_id: str, *, admin: bool = False, **kw: Any) -> str:
        return mint_dev_token(
            user_id, secret=str(settings.effective_hs256_secret), admin=admin, **kw
        )

    return make


@pytest.fixture
def new_user() -> Callable[[], str]:
    return lambda: f"u-{secrets.token_hex(6)}"


class Api:
    """A tiny client for one user: auth header, admin helpers, polling."""

    def __init__(self, client: httpx.Client, user_id: str, token: str, admin_token: str) -> None:
        self.client, self.user_id = client, user_id
        self.headers = {"Authorization": f"Bearer {token}"}
        self.admin_headers = {"Authorization": f"Bearer {admin_token}"}

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.client.post(path, json=body, headers={**self.headers, **headers})

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers, **kw)

    def grant(self, plan: str | None) -> None:
        r = self.client.post(
            "/v1/admin/subscriptions", json={"user_id": self.user_id, "plan": plan},
            headers=self.admin_headers,
        )  # fmt: skip
        assert r.status_code == 200, r.text

    def boost(self, days: int = 30) -> httpx.Response:
        return self.client.post(
            "/v1/admin/boosts", json={"user_id": self.user_id, "days": days},
            headers=self.admin_headers,
        )  # fmt: skip

    def wait(self, generation_id: str, timeout_s: float = 20) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body: dict[str, Any] = self.get(f"/v1/generations/{generation_id}").json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body
            time.sleep(0.05)
        raise AssertionError(f"generation {generation_id} did not finish")


@pytest.fixture
def api(
    client: httpx.Client, token: Callable[..., str], new_user: Callable[[], str]
) -> Callable[..., Api]:
    def make(plan: str | None = None) -> Api:
        user = new_user()
        a = Api(client, user, token(user), token("admin-" + user, admin=True))
        if plan:
            a.grant(plan)
        return a

    return make


@pytest.fixture
def make_worker_env(
    base_env: dict[str, str],
    container: Container,
    client: httpx.Client,
    use_container: Callable[[Container], Container],
) -> Iterator[WorkerEnvFactory]:
    """``make_worker_env(default=…, **settings)``: the worker wired to a fresh FakeMiniMax
    (``default`` answers every call not scripted with ``env.fake.push``), installed as the
    server's container; every one made is closed after the test."""
    envs: list[WorkerEnv] = []

    def make(
        *, default: Scripted | None = None, responder: Responder | None = None, **kw: Any
    ) -> WorkerEnv:
        fake = FakeMiniMax(default=default, responder=responder).start()
        env = WorkerEnv.build(base_env, container, client, fake, **kw)
        envs.append(env)
        use_container(env.container)
        return env

    yield make
    for env in envs:
        env.llm.close()
        env.fake.stop()


__all__ = ["REHEARSAL_STATE", "Api", "RemoteServer", "WorkerEnvFactory", "rehearsal_state"]
