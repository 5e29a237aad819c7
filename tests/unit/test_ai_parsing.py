"""Parsing and validating the model's answer (SPEC §5 output contract)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ai.errors import PROVIDER_BAD_OUTPUT, ProviderError
from shared.ai.parsing import normalise_hashtags, parse_completion, strip_reasoning
from shared.ai.types import GenerationJob, VariantContent


def job(variants: int = 1, **overrides: Any) -> GenerationJob:
    values: dict[str, Any] = {
        "kind": "create",
        "brief": "b",
        "platform": "tiktok",
        "title": None,
        "tone": None,
        "duration_seconds": 30,
        "language": "en",
        "variants": variants,
    }
    values.update(overrides)
    return GenerationJob(**values)


def item(n: int = 1, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "hook": f"hook {n}",
        "script": f"script {n}",
        "caption": f"caption {n}",
        "hashtags": [f"#t{n}"],
    }
    value.update(overrides)
    return value


def answer(*items: dict[str, Any]) -> str:
    return json.dumps({"variants": list(items)})


def bad(text: str, target: GenerationJob | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        parse_completion(text, target or job())
    assert info.value.code == PROVIDER_BAD_OUTPUT
    return info.value


def test_plain_json() -> None:
    [v] = parse_completion(answer(item()), job())
    assert v == VariantContent("hook 1", "script 1", "caption 1", ("#t1",))


@pytest.mark.parametrize(
    "wrap",
    [
        "<think>reasoning {with braces}</think>\nANSWER",
        "<THINK>a</THINK><think>b</think>ANSWER",
        "I reasoned without an opener.</think>ANSWER",
        "<think>never closed, but the answer follows ANSWER",
        "```json\nANSWER\n```",
        "Sure! Here you go:\n```\nANSWER\n```\nEnjoy.",
        "Here it is: ANSWER Let me know!",
        '<think>draft {"variants": []}</think>Final: ANSWER',
        'Draft: {"variants": [{"hook": 1}]} Final answer: ANSWER',
    ],
)
def test_tolerated_wrappers(wrap: str) -> None:
    text = wrap.replace("ANSWER", answer(item(1), item(2)))
    variants = parse_completion(text, job(2))
    assert [v.hook for v in variants] == ["hook 1", "hook 2"]


def test_strip_reasoning_keeps_text_before_an_unterminated_trailing_think() -> None:
    assert strip_reasoning('{"a": 1}<think>cut off').strip() == '{"a": 1}'
    assert strip_reasoning("<think>x</think>y") == "y"


@pytest.mark.parametrize(
    "text",
    ["", "no json here", "{not json}", '{"other": []}', '{"variants": {}}', "[1, 2]", "<think>"],
)
def test_unusable_answers(text: str) -> None:
    bad(text)


def test_extra_variants_are_dropped() -> None:
    variants = parse_completion(answer(*(item(i) for i in range(1, 6))), job(2))
    assert [v.hook for v in variants] == ["hook 1", "hook 2"]


def test_invalid_variant_is_skipped_when_enough_valid_ones_follow() -> None:
    variants = parse_completion(answer(item(1, hook=""), item(2), item(3)), job(2))
    assert [v.hook for v in variants] == ["hook 2", "hook 3"]


def test_too_few_variants() -> None:
    error = bad(answer(item(1), item(2, script=5)), job(2))
    assert "expected 2 usable variants, got 1" in error.message
    assert "variant 2: script" in error.message


@pytest.mark.parametrize(("field", "limit"), [("hook", 300), ("script", 5000), ("caption", 2200)])
def test_text_limits(field: str, limit: int) -> None:
    [v] = parse_completion(answer(item(**{field: "x" * limit})), job())
    assert len(getattr(v, field)) == limit
    assert f"{field} longer than {limit}" in bad(answer(item(**{field: "x" * (limit + 1)}))).message


@pytest.mark.parametrize("value", ["", "   ", None, 3, ["a"]])
def test_text_fields_must_be_non_empty_strings(value: Any) -> None:
    bad(answer(item(caption=value)))


def test_text_is_stripped_and_nul_removed() -> None:
    [v] = parse_completion(answer(item(hook="  he\x00llo \n")), job())
    assert v.hook == "hello"


def test_hashtags_normalised_to_leading_hash_and_deduplicated() -> None:
    assert normalise_hashtags([" #Water", "water", "tip_2", "#TIP_2", "x" * 100]) == (
        "#Water",
        "#tip_2",
        "#" + "x" * 100,
    )
    assert normalise_hashtags("#a, #b  c") == ("#a", "#b", "#c")
    assert normalise_hashtags([]) == ()


@pytest.mark.parametrize(
    "value",
    [["#self-care"], ["#"], ["two words"], ["#café"], ["x" * 101], [1], "##", None, {"a": 1}],
)
def test_invalid_hashtags(value: Any) -> None:
    with pytest.raises(ProviderError) as info:
        normalise_hashtags(value)
    assert info.value.code == PROVIDER_BAD_OUTPUT


def test_at_most_thirty_hashtags() -> None:
    assert len(normalise_hashtags([f"t{i}" for i in range(30)])) == 30
    bad(answer(item(hashtags=[f"t{i}" for i in range(31)])))


def test_targeted_merges_only_chosen_fields() -> None:
    source = VariantContent("old hook", "old script", "old caption", ("#old",))
    target = job(kind="regen_targeted", fields=("script",), source=source)
    [v] = parse_completion(answer(item(hook="", script="new script")), target)
    assert v == VariantContent("old hook", "new script", "old caption", ("#old",))


def test_targeted_only_validates_chosen_fields() -> None:
    source = VariantContent("h", "s", "c", ())
    target = job(kind="regen_targeted", fields=("hook",), source=source)
    bad(answer({"hook": "x" * 301}), target)
    [v] = parse_completion(answer({"hook": "new", "script": None}), target)
    assert v.hook == "new"


def test_huge_answer_is_refused() -> None:
    bad("x" * 300_001)


def test_deep_nesting_does_not_escape() -> None:
    bad("{" + '"a":[' * 100_000)
    bad("[" * 100_000)


def outcome(text: str, target: GenerationJob) -> str:
    """Return "parsed" or the ProviderError's code; any other exception fails the test."""
    try:
        parse_completion(text, target)
    except ProviderError as exc:
        return exc.code
    return "parsed"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_only_raises_provider_error(text: str) -> None:
    assert outcome(text, job(2)) in ("parsed", PROVIDER_BAD_OUTPUT)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["hook", "script", "caption", "hashtags", "x"]), _json_values
        ),
        max_size=4,
    ),
    st.text(max_size=30),
)
def test_arbitrary_variant_objects_only_raise_provider_error(
    items: list[dict[str, Any]], prose: str
) -> None:
    text = prose + json.dumps({"variants": items}) + prose
    if outcome(text, job(2)) != "parsed":
        return
    variants = parse_completion(text, job(2))
    assert len(variants) == 2
    for v in variants:
        assert 0 < len(v.hook) <= 300
        assert 0 < len(v.script) <= 5000
        assert 0 < len(v.caption) <= 2200
        assert len(v.hashtags) <= 30
