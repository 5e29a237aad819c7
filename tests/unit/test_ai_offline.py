"""OfflineWriter: deterministic, labelled, within limits, honours targeted fields, no network."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.offline_writer import LABEL, OfflineWriter
from shared.ai.errors import PROVIDER_TIMEOUT, ProviderError
from shared.ai.parsing import parse_completion
from shared.ai.pricing import cost_micro_usd
from shared.ai.types import GenerationJob, VariantContent


def job(**overrides: Any) -> GenerationJob:
    values: dict[str, Any] = {
        "kind": "create",
        "brief": "3 reasons to drink water",
        "platform": "youtube_shorts",
        "title": None,
        "tone": "upbeat",
        "duration_seconds": 45,
        "language": "en",
        "variants": 3,
    }
    values.update(overrides)
    return GenerationJob(**values)


def later() -> float:
    return time.monotonic() + 10


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the offline writer must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_same_job_same_output() -> None:
    assert OfflineWriter().generate(job(), deadline=later()) == OfflineWriter().generate(
        job(), deadline=later()
    )


def test_different_jobs_differ() -> None:
    a = OfflineWriter().generate(job(), deadline=later())
    b = OfflineWriter().generate(job(brief="something else entirely"), deadline=later())
    assert a.variants != b.variants


def test_labelled_counted_and_identified() -> None:
    completion = OfflineWriter().generate(job(), deadline=later())
    assert len(completion.variants) == 3
    assert len({v.hook for v in completion.variants}) == 3
    assert all(
        v.hook.startswith(LABEL) and v.caption.startswith(LABEL) for v in completion.variants
    )
    assert (completion.provider, completion.model) == ("offline", "offline-v1")
    assert completion.prompt_tokens > 0
    assert completion.completion_tokens > 0
    assert completion.attempts == 1
    assert cost_micro_usd(completion.model, completion.prompt_tokens, 1) == 0


@settings(max_examples=60, deadline=None)
@given(
    brief=st.text(min_size=1, max_size=2000),
    title=st.none() | st.text(max_size=200),
    tone=st.none() | st.text(max_size=64),
    variants=st.integers(1, 5),
)
def test_output_always_passes_the_contract_validation(
    brief: str, title: str | None, tone: str | None, variants: int
) -> None:
    target = job(brief=brief, title=title, tone=tone, variants=variants)
    completion = OfflineWriter().generate(target, deadline=later())
    as_model_answer = json.dumps(
        {
            "variants": [
                {"hook": v.hook, "script": v.script, "caption": v.caption, "hashtags": v.hashtags}
                for v in completion.variants
            ]
        }
    )
    assert parse_completion(as_model_answer, target) == completion.variants


def test_targeted_honours_fields() -> None:
    source = VariantContent("Old hook", "Old script", "Old caption", ("#old",))
    target = job(kind="regen_targeted", variants=1, fields=("caption",), source=source)
    [v] = OfflineWriter().generate(target, deadline=later()).variants
    assert (v.hook, v.script, v.hashtags) == ("Old hook", "Old script", ("#old",))
    assert v.caption != "Old caption"
    assert v.caption.startswith(LABEL)


def test_latency_is_slept_within_the_deadline() -> None:
    slept: list[float] = []
    OfflineWriter(latency_s=0.2, sleep=slept.append).generate(job(), deadline=later())
    assert slept == [0.2]


def test_latency_past_the_deadline_is_a_timeout() -> None:
    slept: list[float] = []
    writer = OfflineWriter(latency_s=5, sleep=slept.append)
    with pytest.raises(ProviderError) as info:
        writer.generate(job(), deadline=time.monotonic() + 1)
    assert info.value.code == PROVIDER_TIMEOUT
    assert info.value.transient
    assert 0 < slept[0] <= 1
