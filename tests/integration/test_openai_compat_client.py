"""OpenAICompatClient (the fallback provider) against a real local HTTP server speaking the
OpenAI chat-completions wire format: request shape, answer parsing, error classes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devtools.fake_minimax import (
    OPENAI_PATH,
    FakeOpenAI,
    Scripted,
    content_filtered,
    empty_choices,
    http_error,
    malformed,
    ok,
    openai_error,
    variant,
)
from shared.ai import (
    PROVIDER_AUTH,
    PROVIDER_BAD_OUTPUT,
    PROVIDER_BAD_REQUEST,
    PROVIDER_BALANCE,
    PROVIDER_CONTENT_POLICY,
    PROVIDER_UNAVAILABLE,
    GenerationJob,
    ProviderError,
)
from shared.ai.providers.openai_compat import OpenAICompatClient, interpret_openai_response

KEY = "fb-key-0123456789"
MODEL = "gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def _client(fake: FakeOpenAI, **kw: object) -> OpenAICompatClient:
    return OpenAICompatClient(
        KEY,
        provider="openrouter",
        base_url=fake.base_url,
        model=MODEL,
        max_tokens=300,
        sleep=lambda s: None,
        **kw,  # type: ignore[arg-type]
    )


def _job(variants: int = 2) -> GenerationJob:
    return GenerationJob(
        kind="create",
        brief="3 reasons to drink water",
        platform="tiktok",
        title=None,
        tone=None,
        duration_seconds=30,
        language="en",
        variants=variants,
    )


def _openai_answer(content: str, prompt: int, completion: int) -> Scripted:
    """A bare OpenAI answer: no MiniMax fields at all."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return Scripted(200, body)


def test_success_posts_the_openai_shape_and_reads_choices_and_usage(fake: FakeOpenAI) -> None:
    from devtools.fake_minimax import variants_json

    fake.push(_openai_answer(variants_json([variant(1), variant(2)]), 33, 44))
    done = _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert (done.provider, done.model) == ("openrouter", MODEL)
    assert (done.prompt_tokens, done.completion_tokens, done.attempts) == (33, 44, 1)
    assert [v.hook for v in done.variants] == [variant(1)["hook"], variant(2)["hook"]]
    [request] = fake.requests
    assert request.path == OPENAI_PATH
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == MODEL
    assert request.body["max_tokens"] == 300
    assert "max_completion_tokens" not in request.body
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_retryable_statuses_are_retried_then_unavailable(fake: FakeOpenAI, status: int) -> None:
    fake.default = http_error(status, retry_after=0)
    with pytest.raises(ProviderError) as err:
        _client(fake, max_attempts=3).generate(_job(), deadline=time.monotonic() + 10)
    assert err.value.code == PROVIDER_UNAVAILABLE
    assert err.value.transient
    assert fake.calls == 3
    assert "fallback provider" in err.value.message
    assert "MiniMax" not in err.value.message


def test_the_request_id_header_is_the_trace_id(fake: FakeOpenAI) -> None:
    import dataclasses

    fake.push(dataclasses.replace(ok(count=2), headers={"x-request-id": "req_abc123"}))
    done = _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert done.trace_id == "req_abc123"


def test_a_retryable_failure_then_success_sums_tokens(fake: FakeOpenAI) -> None:
    fake.push(http_error(503), ok(count=2, prompt_tokens=5, completion_tokens=6))
    done = _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert (done.attempts, done.prompt_tokens, done.completion_tokens) == (2, 5, 6)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (openai_error(401), PROVIDER_AUTH),
        (openai_error(403), PROVIDER_AUTH),
        (openai_error(402), PROVIDER_BALANCE),
        (openai_error(400), PROVIDER_BAD_REQUEST),
        (openai_error(404), PROVIDER_BAD_REQUEST),
        (openai_error(422), PROVIDER_BAD_REQUEST),
        (openai_error(200, code=401), PROVIDER_AUTH),  # in-band error of a gateway
    ],
)
def test_client_errors_fail_at_once(fake: FakeOpenAI, answer: Scripted, code: str) -> None:
    fake.default = answer
    with pytest.raises(ProviderError) as err:
        _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert err.value.code == code
    assert not err.value.transient
    assert fake.calls == 1


def test_an_in_band_server_error_is_retried(fake: FakeOpenAI) -> None:
    fake.push(openai_error(200, code=502), openai_error(200, code="overloaded"), ok(count=2))
    done = _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert done.attempts == 3


def test_content_filter_is_asked_again_once_then_a_policy_refusal(fake: FakeOpenAI) -> None:
    fake.default = content_filtered()
    with pytest.raises(ProviderError) as err:
        _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert err.value.code == PROVIDER_CONTENT_POLICY
    assert fake.calls == 2
    assert err.value.prompt_tokens == 80  # both calls' tokens


@pytest.mark.parametrize("answer", [empty_choices(), malformed()])
def test_unusable_output_is_asked_again_once(fake: FakeOpenAI, answer: Scripted) -> None:
    fake.default = answer
    with pytest.raises(ProviderError) as err:
        _client(fake).generate(_job(), deadline=time.monotonic() + 10)
    assert err.value.code == PROVIDER_BAD_OUTPUT
    assert fake.calls == 2


def test_connection_refused_is_retryable() -> None:
    from devtools.net import free_port

    client = OpenAICompatClient(
        KEY,
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model=MODEL,
        max_tokens=300,
        max_attempts=2,
        sleep=lambda s: None,
    )
    with pytest.raises(ProviderError) as err:
        client.generate(_job(), deadline=time.monotonic() + 10)
    assert err.value.code == PROVIDER_UNAVAILABLE
    assert err.value.transient


def test_interpret_a_non_json_200_as_transient() -> None:
    assert interpret_openai_response(200, b"<html>proxy</html>").kind == "transient"
    assert interpret_openai_response(200, b'{"choices": []}').kind == "bad_output"
