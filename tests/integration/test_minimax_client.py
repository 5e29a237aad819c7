"""MiniMaxClient against a real local HTTP server speaking MiniMax's wire format."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.fake_minimax import (
    ENDPOINT_PATH,
    FakeMiniMax,
    Scripted,
    base_error,
    content_answer,
    delayed,
    empty_choices,
    http_error,
    malformed,
    ok,
    sensitive,
    variant,
    variants_json,
)
from devtools.net import free_port
from shared.ai import (
    PROVIDER_AUTH,
    PROVIDER_BAD_OUTPUT,
    PROVIDER_BAD_REQUEST,
    PROVIDER_BALANCE,
    PROVIDER_CONTENT_POLICY,
    PROVIDER_RATE_LIMITED,
    PROVIDER_TIMEOUT,
    PROVIDER_UNAVAILABLE,
    GenerationJob,
    MiniMaxClient,
    ProviderError,
    VariantContent,
)

API_KEY = "sk-test-key-0123456789"
MODEL = "MiniMax-M2.5"


@pytest.fixture
def fake() -> Iterator[FakeMiniMax]:
    with FakeMiniMax() as server:
        yield server


class Sleeps(list[float]):
    """Records the client's backoff sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(fake: FakeMiniMax, sleeps: Sleeps | None = None, **kwargs: Any) -> MiniMaxClient:
    options: dict[str, Any] = {
        "base_url": fake.url,
        "model": MODEL,
        "max_tokens": 512,
        "sleep": sleeps if sleeps is not None else Sleeps(),
        "rng": lambda: 0.5,
    }
    options.update(kwargs)
    return MiniMaxClient(API_KEY, **options)


def job(variants: int = 1, **overrides: Any) -> GenerationJob:
    values: dict[str, Any] = {
        "kind": "create",
        "brief": "3 reasons to drink water",
        "platform": "tiktok",
        "title": None,
        "tone": "upbeat",
        "duration_seconds": 30,
        "language": "en",
        "variants": variants,
    }
    values.update(overrides)
    return GenerationJob(**values)


def soon(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


def test_happy_path(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(ok(count=2, prompt_tokens=120, completion_tokens=340, trace_id="trace-abc"))
    with_client = make_client(fake, sleeps)

    completion = with_client.generate(job(2), deadline=soon())

    assert len(completion.variants) == 2
    first = completion.variants[0]
    assert first.hook == variant(1)["hook"]
    assert first.hashtags == ("#water", "#tip1", "#health")
    assert (completion.provider, completion.model) == ("minimax", MODEL)
    assert (completion.prompt_tokens, completion.completion_tokens) == (120, 340)
    assert completion.attempts == 1
    assert completion.trace_id == "trace-abc"
    assert sleeps == []

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", ENDPOINT_PATH)
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.body["model"] == MODEL
    assert request.body["max_completion_tokens"] == 512
    assert "max_tokens" not in request.body
    assert 0 < request.body["temperature"] <= 1
    assert request.body["stream"] is False
    assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
    assert API_KEY not in request.raw.decode()


def test_client_is_reused_across_calls_and_threads(fake: FakeMiniMax) -> None:
    fake.default = ok()
    client = make_client(fake)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.generate(job(), deadline=soon())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert fake.calls == 8
    assert client._http() is client._http()
    client.close()


def test_429_then_success_honours_retry_after(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(http_error(429, retry_after=0), ok(prompt_tokens=100, completion_tokens=200))

    completion = make_client(fake, sleeps).generate(job(), deadline=soon())

    assert completion.attempts == 2
    assert fake.calls == 2
    assert sleeps == [0.0]
    assert (completion.prompt_tokens, completion.completion_tokens) == (100, 200)


def test_retry_after_seconds_is_used_instead_of_backoff(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(http_error(503, retry_after=2), ok())

    make_client(fake, sleeps).generate(job(), deadline=soon())

    assert sleeps == [2.0]


def test_retry_after_beyond_deadline_raises_timeout_without_sleeping(
    fake: FakeMiniMax, sleeps: Sleeps
) -> None:
    fake.push(http_error(429, retry_after=120), ok())

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(), deadline=soon(10))

    assert info.value.code == PROVIDER_TIMEOUT
    assert info.value.transient
    assert sleeps == []
    assert fake.calls == 1


def test_base_resp_rate_limit_then_success_counts_tokens_of_both(
    fake: FakeMiniMax, sleeps: Sleeps
) -> None:
    fake.push(
        base_error(1002, "rate limit", prompt_tokens=10, completion_tokens=1),
        ok(prompt_tokens=100, completion_tokens=200),
    )

    completion = make_client(fake, sleeps).generate(job(), deadline=soon())

    assert completion.attempts == 2
    assert (completion.prompt_tokens, completion.completion_tokens) == (110, 201)
    # Full jitter: rng() = 0.5 times min(cap 8, base 0.5 * 2**0).
    assert sleeps == [0.25]


def test_5xx_exhausted_is_transient_unavailable(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(http_error(500), http_error(502), http_error(503), http_error(503))

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps, max_attempts=4).generate(job(), deadline=soon())

    assert info.value.code == PROVIDER_UNAVAILABLE
    assert info.value.transient
    assert info.value.status == 503
    assert info.value.attempts == 4
    assert fake.calls == 4
    assert sleeps == [0.25, 0.5, 1.0]


def test_connection_refused_is_retried_then_unavailable(sleeps: Sleeps) -> None:
    port = free_port()
    client = MiniMaxClient(
        API_KEY,
        base_url=f"http://127.0.0.1:{port}",
        model=MODEL,
        max_tokens=512,
        max_attempts=3,
        sleep=sleeps,
        rng=lambda: 0.0,
    )

    with pytest.raises(ProviderError) as info:
        client.generate(job(), deadline=soon())

    assert info.value.code == PROVIDER_UNAVAILABLE
    assert info.value.attempts == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (http_error(401), PROVIDER_AUTH),
        (http_error(403), PROVIDER_AUTH),
        (http_error(402), PROVIDER_BALANCE),
        (http_error(400), PROVIDER_BAD_REQUEST),
        (http_error(422), PROVIDER_BAD_REQUEST),
        (http_error(404), PROVIDER_BAD_REQUEST),
        (base_error(1004), PROVIDER_AUTH),
        (base_error(2049), PROVIDER_AUTH),
        (base_error(1008), PROVIDER_BALANCE),
        (base_error(1026), PROVIDER_CONTENT_POLICY),
        (sensitive(output=False), PROVIDER_CONTENT_POLICY),
        (base_error(1042), PROVIDER_BAD_REQUEST),
        (base_error(2013), PROVIDER_BAD_REQUEST),
        (base_error(2056), PROVIDER_RATE_LIMITED),
    ],
)
def test_permanent_errors_fail_fast(
    fake: FakeMiniMax, sleeps: Sleeps, answer: Scripted, code: str
) -> None:
    fake.push(answer, ok())

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(), deadline=soon())

    assert info.value.code == code
    assert not info.value.transient
    assert info.value.attempts == 1
    assert fake.calls == 1
    assert sleeps == []


def test_permanent_error_carries_tokens_spent_before_it(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(
        base_error(1002, prompt_tokens=7, completion_tokens=0),
        base_error(1008, prompt_tokens=5, completion_tokens=0),
    )

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(), deadline=soon())

    assert info.value.code == PROVIDER_BALANCE
    assert info.value.base_code == 1008
    assert (info.value.prompt_tokens, info.value.completion_tokens) == (12, 0)
    assert info.value.attempts == 2


def test_output_sensitive_is_retried_at_most_once(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(sensitive(), sensitive(), ok())

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(), deadline=soon())

    assert info.value.code == PROVIDER_CONTENT_POLICY
    assert fake.calls == 2


def test_output_sensitive_once_then_success(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(sensitive(), ok())

    completion = make_client(fake, sleeps).generate(job(), deadline=soon())

    assert completion.attempts == 2


def test_server_slower_than_runtime_cap_raises_timeout_near_the_cap(fake: FakeMiniMax) -> None:
    fake.push(delayed(ok(), 10.0))
    fake.default = delayed(ok(), 10.0)
    client = make_client(fake, sleep=time.sleep)

    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        client.generate(job(), deadline=started + 1.0)
    elapsed = time.monotonic() - started

    assert info.value.code == PROVIDER_TIMEOUT
    assert info.value.transient
    assert 0.9 <= elapsed < 2.0
    assert fake.calls == 1


def test_read_timeout_is_retried_while_the_deadline_allows(fake: FakeMiniMax) -> None:
    fake.push(delayed(ok(), 3.0), ok(prompt_tokens=1, completion_tokens=2))
    client = make_client(fake, sleep=time.sleep, read_timeout_s=0.3, rng=lambda: 0.0)

    completion = client.generate(job(), deadline=soon(10))

    assert completion.attempts == 2
    assert (completion.prompt_tokens, completion.completion_tokens) == (1, 2)


def test_expired_deadline_makes_no_call(fake: FakeMiniMax) -> None:
    with pytest.raises(ProviderError) as info:
        make_client(fake).generate(job(), deadline=time.monotonic() - 1)

    assert info.value.code == PROVIDER_TIMEOUT
    assert fake.calls == 0


def test_malformed_once_then_good_succeeds(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(
        malformed(prompt_tokens=100, completion_tokens=50),
        ok(prompt_tokens=110, completion_tokens=200),
    )

    completion = make_client(fake, sleeps).generate(job(), deadline=soon())

    assert completion.attempts == 2
    assert fake.calls == 2
    assert (completion.prompt_tokens, completion.completion_tokens) == (210, 250)
    retry_prompt = fake.requests[1].body["messages"][-1]["content"]
    assert "could not be used" in retry_prompt
    assert "could not be used" not in fake.requests[0].body["messages"][-1]["content"]


def test_malformed_twice_is_bad_output(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(malformed(), malformed("no json at all"), ok())

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(), deadline=soon())

    assert info.value.code == PROVIDER_BAD_OUTPUT
    assert not info.value.transient
    assert (info.value.prompt_tokens, info.value.completion_tokens) == (200, 100)
    assert fake.calls == 2


def test_too_few_variants_counts_as_malformed(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(ok(count=1), ok(count=2))

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(3), deadline=soon())

    assert info.value.code == PROVIDER_BAD_OUTPUT
    assert fake.calls == 2


def test_empty_choices_then_success(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(empty_choices(), ok())

    completion = make_client(fake, sleeps).generate(job(), deadline=soon())

    assert completion.attempts == 2


def test_over_limit_field_is_malformed(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    too_long = variant(1, hook="x" * 301)
    fake.push(ok([too_long]), ok([too_long]))

    with pytest.raises(ProviderError) as info:
        make_client(fake, sleeps).generate(job(), deadline=soon())

    assert info.value.code == PROVIDER_BAD_OUTPUT
    assert "hook longer than 300" in info.value.message


def test_think_block_and_fenced_json_are_parsed(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(ok(count=2, think=True, fenced=True))

    completion = make_client(fake, sleeps).generate(job(2), deadline=soon())

    assert [v.hook for v in completion.variants] == [variant(1)["hook"], variant(2)["hook"]]
    assert completion.attempts == 1


def test_extra_variants_are_dropped(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    fake.push(ok(count=5))

    completion = make_client(fake, sleeps).generate(job(2), deadline=soon())

    assert [v.script for v in completion.variants] == [variant(1)["script"], variant(2)["script"]]


def test_targeted_regen_keeps_unchosen_fields(fake: FakeMiniMax, sleeps: Sleeps) -> None:
    source = VariantContent(
        hook="Old hook", script="Old script stays.", caption="Old caption", hashtags=("#old",)
    )
    rewritten = {
        "hook": "Brand new hook",
        "script": "The model rewrote this too, but it was not asked to.",
        "caption": "Unwanted caption",
        "hashtags": ["#fresh", "#new"],
    }
    fake.push(ok([rewritten]))
    targeted = job(
        1,
        kind="regen_targeted",
        fields=("hashtags", "hook"),
        source=source,
        instructions="punchier",
    )

    completion = make_client(fake, sleeps).generate(targeted, deadline=soon())

    assert completion.variants == (
        VariantContent(
            hook="Brand new hook",
            script="Old script stays.",
            caption="Old caption",
            hashtags=("#fresh", "#new"),
        ),
    )
    body = fake.requests[0].body
    assert body["temperature"] < 0.9
    assert "Old script stays." in body["messages"][-1]["content"]


def test_targeted_regen_accepts_answer_with_only_chosen_fields(
    fake: FakeMiniMax, sleeps: Sleeps
) -> None:
    source = VariantContent(hook="h", script="s", caption="c", hashtags=())
    fake.push(content_answer(variants_json([{"caption": "New caption"}])))
    targeted = job(1, kind="regen_targeted", fields=("caption",), source=source)

    completion = make_client(fake, sleeps).generate(targeted, deadline=soon())

    assert completion.variants == (VariantContent("h", "s", "New caption", ()),)


def test_logs_hold_no_prompt_output_or_key(
    fake: FakeMiniMax, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    brief = "BRIEF-MARKER-7731 secret product launch"
    output_hook = "OUTPUT-MARKER-9912 hook"
    fake.push(
        http_error(429, retry_after=0, trace_id="trace-429"),
        malformed("PROSE-MARKER-5521 not json"),
        ok([variant(1, hook=output_hook)], trace_id="trace-ok"),
        malformed("PROSE-MARKER-5521 not json"),
        malformed("PROSE-MARKER-5521 not json"),
    )
    client = make_client(fake, sleeps)
    caplog.set_level(logging.DEBUG)

    client.generate(job(brief=brief, title="TITLE-MARKER-4410"), deadline=soon())
    with pytest.raises(ProviderError) as info:
        client.generate(job(brief=brief), deadline=soon())

    records = [r for r in caplog.records if r.name.startswith("reel.ai")]
    events = [r.__dict__["fields"]["event"] for r in records]
    assert events.count("provider_attempt") == 5
    assert events.count("provider_rate_limited") == 1  # the 429, counted by a log metric
    everything = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    everything += str(info.value) + repr(info.value)
    for secret in (API_KEY, "BRIEF-MARKER", "OUTPUT-MARKER", "PROSE-MARKER", "TITLE-MARKER"):
        assert secret not in everything
    assert "trace-429" in caplog.text
    assert "trace-ok" in caplog.text
    assert API_KEY not in repr(client)
