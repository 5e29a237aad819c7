"""The smoke run's fresh token: OAuth 2.0 client credentials against the identity
provider's token endpoint (faked here: the only external call), the client secret read
from Secret Manager by name, and nothing secret echoed in an error."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

import httpx
import pytest

from scripts.smoke import TokenError, main, mint_token

TOKEN_URL = "https://issuer.example.com/oauth/token"
SECRET_NAME = "projects/acme/secrets/reel-smoke-client-secret/versions/latest"
ENV = {
    "SMOKE_TOKEN_URL": TOKEN_URL,
    "SMOKE_CLIENT_ID": "smoke-client",
    "SMOKE_CLIENT_SECRET": SECRET_NAME,
    "SMOKE_AUDIENCE": "reel-content-api",
}


def _resolve(env: Mapping[str, str]) -> dict[str, str]:
    # Secret Manager, faked: the name resolves to the client secret.
    return {k: ("s3cret-value" if v == SECRET_NAME else v) for k, v in env.items()}


def _issuer(status: int, body: object, seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_a_token_is_minted_with_client_credentials_for_the_api_audience() -> None:
    seen: list[httpx.Request] = []
    http = _issuer(200, {"access_token": "fresh.jwt.token", "token_type": "Bearer"}, seen)
    assert mint_token(ENV, http=http, resolve=_resolve) == "fresh.jwt.token"
    [request] = seen
    assert str(request.url) == TOKEN_URL
    assert request.method == "POST"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": ["smoke-client"],
        "client_secret": ["s3cret-value"],
        "audience": ["reel-content-api"],
    }


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": "access_denied", "client_secret": "s3cret-value"}, "HTTP 401"),
        (200, {"token_type": "Bearer"}, "no bearer access_token"),
        (200, {"access_token": "x", "token_type": "mac"}, "no bearer access_token"),
        (200, ["not", "an", "object"], "no bearer access_token"),
    ],
)
def test_a_refusal_names_why_without_echoing_secrets(
    status: int, body: object, message: str
) -> None:
    http = _issuer(status, body, [])
    with pytest.raises(TokenError, match=message) as caught:
        mint_token(ENV, http=http, resolve=_resolve)
    assert "s3cret-value" not in str(caught.value)


def test_missing_settings_and_plain_http_are_refused_before_any_call() -> None:
    seen: list[httpx.Request] = []
    http = _issuer(200, {"access_token": "x"}, seen)
    with pytest.raises(TokenError, match="SMOKE_CLIENT_ID, SMOKE_AUDIENCE"):
        mint_token({**ENV, "SMOKE_CLIENT_ID": "", "SMOKE_AUDIENCE": " "}, http=http)
    with pytest.raises(TokenError, match="SMOKE_TOKEN_URL: an https://"):
        mint_token({**ENV, "SMOKE_TOKEN_URL": "http://issuer.example.com/token"}, http=http)
    assert seen == []


def test_the_cli_exits_2_when_no_token_can_be_minted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SMOKE_TOKEN", raising=False)
    assert main(["--base-url", "https://api.example.com", "--client-credentials"]) == 2
    assert "needs SMOKE_TOKEN_URL" in capsys.readouterr().err
