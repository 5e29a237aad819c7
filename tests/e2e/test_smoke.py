"""`make smoke` against the local server (the same script runs against a deployment)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.local_server import LocalServer
from scripts import smoke
from tests.support.e2e import Api, RemoteServer

# Runs in-process and, through the base-URL switch, against the rehearsal (conftest.py).
pytestmark = pytest.mark.rehearsal

ROOT = Path(__file__).resolve().parents[2]


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


def test_smoke_cli_needs_url_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMOKE_TOKEN", raising=False)
    assert smoke.main(["--base-url", ""]) == 2
    assert smoke.main(["--base-url", "http://127.0.0.1:9"]) == 2
    assert smoke.main(["--base-url", "http://127.0.0.1:9", "--token-file", "/nonexistent"]) == 2


@pytest.mark.parametrize("source", ["env", "file"])
def test_smoke_cli_reads_the_token_and_never_prints_it(
    server: LocalServer | RemoteServer,
    api: Callable[..., Api],
    token: Callable[..., str],
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = token(api("basic").user_id)
    args = ["--base-url", server.url]
    monkeypatch.delenv("SMOKE_TOKEN", raising=False)
    if source == "env":
        monkeypatch.setenv("SMOKE_TOKEN", secret)
    else:
        (tmp_path / "token").write_text(secret + "\n")
        args += ["--token-file", str(tmp_path / "token")]
    assert smoke.main(args) == 0
    out = capsys.readouterr()
    assert "smoke ok" in out.out
    for part in (secret, *secret.split(".")):
        assert part not in out.out + out.err


def test_make_smoke_does_not_echo_the_token() -> None:
    # make echoes each recipe line before running it: the token must not be on it.
    secret = "smoke-secret-" + "x" * 20
    result = subprocess.run(
        ["make", "-n", "smoke", "BASE_URL=http://example.invalid", "TOKEN_FILE=/tmp/t"],
        cwd=ROOT,
        env={**os.environ, "SMOKE_TOKEN": secret, "TOKEN": secret},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "scripts.smoke" in result.stdout
    assert "--token-file" in result.stdout
    assert secret not in result.stdout + result.stderr
