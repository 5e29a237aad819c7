"""The worker against a local MiniMax (real HTTP, MiniMax's wire format): what each
provider answer does to the generation, the ledger, the monthly pool and the leases.

Each failure test first runs one generation to success (the "anchor"), so the pool reads
1 after a correct refund and 0 after a double one (counters never go below zero).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.fake_minimax import (
    Scripted,
    base_error,
    delayed,
    http_error,
    malformed,
    ok,
    variant,
)
from shared.ai import cost_micro_usd
from tests.support.e2e import Api, WorkerEnvFactory
from tests.support.worker_env import MINIMAX_KEY, MODEL, WorkerEnv


@pytest.fixture
def env(make_worker_env: WorkerEnvFactory) -> WorkerEnv:
    return make_worker_env()


def _anchor(env: WorkerEnv, user: Api) -> None:
    """One succeeded (charged) generation for ``user``."""
    env.fake.push(ok())
    generation_id = env.create(user.headers)
    assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}


def test_success_stores_variants_and_one_billable_ledger_row(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    answers = [variant(i, hook=f"Hook number {i}") for i in (1, 2, 3)]
    env.fake.push(ok(answers, prompt_tokens=120, completion_tokens=340))
    generation_id = env.create(user.headers, variants=3)

    r = env.deliver(env.job(generation_id))

    assert r.status_code == 200, r.text
    assert r.json() == {"result": "succeeded"}
    gen = user.get(f"/v1/generations/{generation_id}").json()
    assert gen["status"] == "succeeded"
    assert gen["error"] is None
    assert [v["hook"] for v in gen["variants"]] == [
        "Hook number 1",
        "Hook number 2",
        "Hook number 3",
    ]
    assert gen["variants"][0]["hashtags"] == ["#water", "#tip1", "#health"]  # normalised
    assert env.ledger(generation_id) == [
        {
            "prompt_tokens": 120,
            "completion_tokens": 340,
            "cost_micro_usd": cost_micro_usd(MODEL, 120, 340),
            "billable": True,
            "model": MODEL,
            "plan": "pro",
        }
    ]
    assert cost_micro_usd(MODEL, 120, 340) > 0
    assert env.usage(user.headers) == (1, 0)  # charged once, both leases released
    [request] = env.fake.requests
    assert request.headers["authorization"] == f"Bearer {MINIMAX_KEY}"
    assert request.body["model"] == MODEL
    assert request.body["max_completion_tokens"] == 512


@pytest.mark.parametrize(
    "transient",
    [http_error(429, retry_after=0), base_error(1002, "rate limit")],
    ids=["http-429", "base-resp-1002"],
)
def test_transient_error_is_retried_then_succeeds_once(
    env: WorkerEnv, api: Callable[..., Api], transient: Scripted
) -> None:
    user = api("standard")
    env.fake.push(transient, ok(count=2))
    generation_id = env.create(user.headers, variants=2)

    assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}

    assert env.fake.calls == 2
    assert env.variant_count(generation_id) == 2
    [row] = env.ledger(generation_id)
    assert row["billable"] is True
    assert (row["prompt_tokens"], row["completion_tokens"]) == (100, 200)
    assert env.usage(user.headers) == (1, 0)


@pytest.mark.parametrize(
    ("base_code", "code"),
    [(1004, "PROVIDER_AUTH"), (1008, "PROVIDER_BALANCE"), (1026, "PROVIDER_CONTENT_POLICY")],
)
def test_permanent_error_fails_fast_refunds_once_and_releases(
    env: WorkerEnv, api: Callable[..., Api], base_code: int, code: str
) -> None:
    user = api("pro")
    _anchor(env, user)
    env.fake.push(base_error(base_code, prompt_tokens=30, completion_tokens=0))
    generation_id = env.create(user.headers)
    assert env.usage(user.headers) == (2, 1)

    r = env.deliver(env.job(generation_id))

    assert r.json() == {"result": "failed"}
    assert env.fake.calls == 2  # the anchor's call + exactly one: no retry
    gen = user.get(f"/v1/generations/{generation_id}").json()
    assert gen["status"] == "failed"
    assert gen["error"]["code"] == code
    assert gen["variants"] == []
    assert env.usage(user.headers) == (1, 0)  # refunded, leases released
    [row] = env.ledger(generation_id)
    assert row["billable"] is False
    assert row["prompt_tokens"] == 30  # tokens spent are still recorded

    # A redelivery is acknowledged and changes nothing (no second refund, no call).
    assert env.deliver(env.job(generation_id)).json() == {"result": "already_terminal"}
    assert env.fake.calls == 2
    assert env.usage(user.headers) == (1, 0)
    assert len(env.ledger(generation_id)) == 1


@pytest.mark.slow
def test_provider_slower_than_the_job_cap_fails_with_timeout(
    make_worker_env: WorkerEnvFactory, api: Callable[..., Api]
) -> None:
    env = make_worker_env(max_job_runtime_s=5)  # the smallest cap the settings accept
    user = api("pro")
    _anchor(env, user)
    env.fake.push(delayed(ok(), 30))
    generation_id = env.create(user.headers)

    r = env.deliver(env.job(generation_id))

    assert r.json() == {"result": "failed"}
    assert env.generation(generation_id)["code"] == "PROVIDER_TIMEOUT"
    assert env.usage(user.headers) == (1, 0)
    [row] = env.ledger(generation_id)
    assert row["billable"] is False


def test_malformed_output_twice_fails_bad_output_and_refunds(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("pro")
    _anchor(env, user)
    env.fake.push(malformed(), malformed('{"variants": []}'))
    generation_id = env.create(user.headers)

    assert env.deliver(env.job(generation_id)).json() == {"result": "failed"}

    assert env.fake.calls == 3  # anchor + the answer + one retry
    assert env.generation(generation_id)["code"] == "PROVIDER_BAD_OUTPUT"
    assert env.usage(user.headers) == (1, 0)
    [row] = env.ledger(generation_id)
    assert row["billable"] is False
    assert (row["prompt_tokens"], row["completion_tokens"]) == (200, 100)  # both attempts


def test_malformed_output_once_is_asked_again_and_succeeds(
    env: WorkerEnv, api: Callable[..., Api]
) -> None:
    user = api("basic")
    env.fake.push(malformed(), ok())
    generation_id = env.create(user.headers)

    assert env.deliver(env.job(generation_id)).json() == {"result": "succeeded"}

    assert env.fake.calls == 2
    assert env.variant_count(generation_id) == 1
    [row] = env.ledger(generation_id)
    assert (row["billable"], row["prompt_tokens"]) == (True, 200)
    assert env.usage(user.headers) == (1, 0)
