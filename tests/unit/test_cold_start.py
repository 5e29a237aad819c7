"""What a cold instance loads to answer its first request (issue 17: cold start).

Each case starts a fresh interpreter, builds the function the way the
functions-framework CLI does (``create_app``), answers one request and lists
``sys.modules``: a library a refused request does not need must not be there. These pin
the lazy imports (``bench/coldstart.py`` times them): the Redis libraries load with the
backend's adapter (redis-py over TCP, upstash-redis and httpx over REST), PyJWT only when
there is a token to read, the Stripe SDK only when there is a signature to check, the
database and the API's pydantic models only after authentication.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.queue.signing import sign_qstash
from shared.registry import FUNCTIONS, function_by_name

ROOT = Path(__file__).resolve().parents[2]
_CONFIG_PREFIXES = (
    "APP_ENV", "APP_FUNCTION", "DATABASE_URL", "REDIS_", "UPSTASH_", "AUTH_", "QSTASH_",
    "QUEUE_", "WORKER_URL", "AI_", "MINIMAX_", "CURSOR_", "STRIPE_", "PORT", "LOG_LEVEL",
)  # fmt: skip
# Nothing listens on port 1: a function that connected would answer 503, not 401/400.
DEV = {
    "APP_ENV": "development",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "WORKER_URL": "http://worker.test",
    "LOG_LEVEL": "ERROR",
}
UPSTASH = {"UPSTASH_REDIS_REST_URL": "http://127.0.0.1:1", "UPSTASH_REDIS_REST_TOKEN": "t"}
STRIPE = {
    "STRIPE_WEBHOOK_SECRET": "whsec_test",
    **{f"STRIPE_PRICE_{p}": f"price_{p}" for p in ("BASIC", "STANDARD", "PRO", "PRO_BOOST")},
}
SIGNING_KEY = "dev-current-signing-key-not-for-production-0123456789abcdef"  # the dev default
LIBRARIES = ("jwt", "cryptography", "redis", "upstash_redis", "httpx", "pg8000", "qstash", "stripe")
OURS = ("shared.api.models", "shared.db.database", "shared.services")
PYDANTIC = ("pydantic", "pydantic_core")

_PROBE = """
import json, sys
import functions_framework

target, source, method, path, headers = sys.argv[1:6]
app = functions_framework.create_app(target, source)
resp = app.test_client().open(
    path, method=method, data=b"{}",
    headers={"Content-Type": "application/json", **json.loads(headers)},
)
print(json.dumps({"status": resp.status_code, "modules": sorted(sys.modules)}))
"""


def _first_response(
    function: str, method: str, path: str, env: dict[str, str], headers: dict[str, str]
) -> tuple[int, set[str]]:
    """(status, top-level and ``shared.*`` module names loaded) of a fresh instance."""
    spec = function_by_name(function)
    assert spec is not None
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_PREFIXES)}
    args = [spec.entry_point, f"functions/{spec.module}.py", method, path, json.dumps(headers)]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    modules = set(out["modules"])
    loaded = {m.partition(".")[0] for m in modules} | {
        prefix for prefix in OURS if any(m == prefix or m.startswith(prefix + ".") for m in modules)
    }
    return out["status"], loaded


def _signature(path: str, body: bytes = b"{}", key: str = SIGNING_KEY) -> dict[str, str]:
    return {"Upstash-Signature": sign_qstash(body, "http://worker.test" + path, key)}


@pytest.mark.parametrize(
    ("function", "method", "path"),
    [
        ("create", "POST", "/v1/create"),
        ("library", "GET", "/v1/library/assets"),
        ("admin", "GET", "/v1/admin/costs"),
        ("worker", "POST", "/worker/generate"),
        ("worker", "POST", "/worker/sweep"),
    ],
)
def test_a_request_without_credentials_loads_no_client_library(
    function: str, method: str, path: str
) -> None:
    status, loaded = _first_response(function, method, path, DEV, {})
    assert status == 401
    assert loaded.isdisjoint(LIBRARIES + OURS), sorted(loaded & {*LIBRARIES, *OURS})


def _first_route(function: str) -> tuple[str, str]:
    from shared.api.routes import routes_for

    route = routes_for(function)[0]
    return route.method, re.sub(r"\{\w+\}", "00000000-0000-0000-0000-000000000000", route.pattern)


_REFUSED = [f.name for f in FUNCTIONS if f.auth in ("bearer", "qstash")]


@pytest.mark.parametrize("function", _REFUSED)
def test_a_refused_first_request_loads_no_pydantic(function: str) -> None:
    # Importing pydantic and building a model class cost ~50 ms of a ~70 ms cold start.
    method, path = _first_route(function)
    status, loaded = _first_response(function, method, path, DEV, {})
    assert status == 401
    assert loaded.isdisjoint(PYDANTIC), sorted(loaded & {*PYDANTIC})


def test_a_forged_signature_is_read_with_pyjwt_but_builds_no_redis_client() -> None:
    forged = _signature("/worker/generate", key="not-" + SIGNING_KEY)
    status, loaded = _first_response("worker", "POST", "/worker/generate", DEV, forged)
    assert status == 401
    assert "jwt" in loaded
    assert loaded.isdisjoint({"redis", "upstash_redis", "httpx", "pg8000", *OURS})


@pytest.mark.parametrize(
    ("env", "library", "other"),
    [(DEV, "redis", "upstash_redis"), ({**DEV, **UPSTASH}, "upstash_redis", "redis")],
    ids=["tcp", "upstash"],
)
def test_recording_a_token_loads_only_the_configured_redis_library(
    env: dict[str, str], library: str, other: str
) -> None:
    # A valid signature over a body that is no job: its use is recorded (SET NX) before
    # the 422, and Redis (a closed port) answers 503. (The worker's service is loaded by
    # then: an authenticated request may load httpx for the AI client.)
    headers = _signature("/worker/generate")
    status, loaded = _first_response("worker", "POST", "/worker/generate", env, headers)
    assert status == 503
    assert library in loaded
    assert other not in loaded


def test_a_stripe_webhook_without_a_signature_loads_neither_the_sdk_nor_the_database() -> None:
    status, loaded = _first_response(
        "stripe-webhook", "POST", "/webhooks/stripe", {**DEV, **STRIPE}, {}
    )
    assert status == 400
    assert loaded.isdisjoint(LIBRARIES + OURS), sorted(loaded & {*LIBRARIES, *OURS})
