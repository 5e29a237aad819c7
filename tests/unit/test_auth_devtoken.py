"""``python -m devtools.devtoken`` as a real subprocess, and its refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import devtoken
from shared.api.auth import Authenticator, Principal
from shared.config import DEV_HS256_SECRET, Settings

REPO = Path(__file__).resolve().parents[2]
# The subprocess sees only the configuration each test sets.
CONFIG_NAMES = {var.name for var in Settings.env_vars().values()}
SECRET = "cli-test-hs256-secret-0123456789abcdef"

# Every variable a production deployment must set (values are never contacted).
PRODUCTION_ENV = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://u:p@db.invalid:5432/reel",
    "REDIS_URL": "redis://redis.invalid:6379/0",
    "AUTH_JWKS_URL": "https://idp.invalid/jwks",
    "AUTH_ISSUER": "https://idp.invalid",
    "AUTH_AUDIENCE": "reel",
    "CURSOR_SECRET": "cursor-secret",
    "QSTASH_TOKEN": "t",
    "QSTASH_CURRENT_SIGNING_KEY": "c",
    "QSTASH_NEXT_SIGNING_KEY": "n",
    "AI_API_KEY": "k",
    "WORKER_URL": "https://worker.invalid",
}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CONFIG_NAMES}
    return subprocess.run(
        [sys.executable, "-m", "devtools.devtoken", *args],
        cwd=REPO,
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_prints_a_token_that_authenticates() -> None:
    env = {"AUTH_HS256_SECRET": SECRET, "AUTH_ISSUER": "dev-iss", "AUTH_AUDIENCE": "reel"}
    result = run_cli("cli-user", "--admin", "--ttl-s", "120", env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    auth = Authenticator(jwks_url=None, issuer="dev-iss", audience="reel", hs256_secret=SECRET)
    assert auth.authenticate(f"Bearer {token}") == Principal("cli-user", is_admin=True)


def test_cli_uses_the_dev_default_secret_when_nothing_is_configured() -> None:
    result = run_cli("someone", env={})
    assert result.returncode == 0, result.stderr
    auth = Authenticator(jwks_url=None, issuer=None, audience=None, hs256_secret=DEV_HS256_SECRET)
    assert auth.authenticate(f"Bearer {result.stdout.strip()}") == Principal("someone", False)


def test_cli_refuses_in_production() -> None:
    result = run_cli("someone", env=PRODUCTION_ENV)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "APP_ENV=production" in result.stderr


def test_cli_refuses_without_hs256_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("APP_ENV", "AUTH_HS256_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.invalid/jwks")
    assert devtoken.main(["someone"]) == 2


def test_cli_refuses_bad_user_id(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("APP_ENV", "AUTH_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTH_HS256_SECRET", SECRET)
    assert devtoken.main(["bad user"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert "user_id" in out.err


def test_cli_reports_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    assert devtoken.main(["someone"]) == 2
