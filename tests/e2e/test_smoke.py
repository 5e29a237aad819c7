"""`make smoke` against the local server (the same script runs against a deployment)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scripts import smoke
from shared.api.local import LocalServer
from tests.e2e.conftest import Api, RemoteServer

# Runs in-process and, through the base-URL switch, against the rehearsal (conftest.py).
pytestmark = pytest.mark.rehearsal


def test_smoke_passes_against_local_server(
    server: LocalServer | RemoteServer, api: Callable[..., Api], token: Callable[..., str]
) -> None:
    a = api("basic")
    assert smoke.run(server.url, token(a.user_id), timeout_s=30) == []


def test_smoke_reports_a_user_without_plan(
    server: LocalServer | RemoteServer, api: Callable[..., Api], token: Callable[..., str]
) -> None:
    a = api(None)
    [failure] = smoke.run(server.url, token(a.user_id), timeout_s=5)
    assert failure.startswith("create: HTTP 402")


def test_smoke_cli_needs_url_and_token() -> None:
    assert smoke.main(["--base-url", "", "--token", ""]) == 2
