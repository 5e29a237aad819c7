"""Cost estimates in integer micro-dollars."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.ai.pricing import cost_micro_usd, price_for


@pytest.mark.parametrize("model", ["MiniMax-M2", "MiniMax-M2.1", "MiniMax-M2.5", "MiniMax-M2.7"])
def test_standard_models(model: str) -> None:
    # $0.30 per 1M in + $1.20 per 1M out = 0.30 + 1.20 micro-dollars per token.
    assert cost_micro_usd(model, 1_000_000, 1_000_000) == 1_500_000
    assert cost_micro_usd(model, 1000, 2000) == 300 + 2400


def test_highspeed_costs_double() -> None:
    assert cost_micro_usd("MiniMax-M2.5-highspeed", 1000, 2000) == 600 + 4800


def test_rounds_up_to_a_whole_micro_dollar() -> None:
    assert cost_micro_usd("MiniMax-M2.5", 1, 0) == 1  # 0.3 micro-dollars
    assert cost_micro_usd("MiniMax-M2.5", 10, 0) == 3
    assert cost_micro_usd("MiniMax-M2.5", 0, 0) == 0


def test_model_names_are_case_insensitive() -> None:
    assert price_for("minimax-m2.5") == price_for(" MiniMax-M2.5 ")


@pytest.mark.parametrize("model", ["MiniMax-M1", "MiniMax-Text-01", "gpt-x", ""])
def test_unknown_model_gets_the_dearest_known_price(model: str) -> None:
    assert price_for(model) == price_for("MiniMax-M2.7-highspeed")


def test_offline_writer_is_free() -> None:
    assert cost_micro_usd("offline-v1", 10_000, 10_000) == 0


def test_negative_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        cost_micro_usd("MiniMax-M2.5", -1, 0)


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_never_under_estimates(prompt: int, completion: int) -> None:
    cost = cost_micro_usd("MiniMax-M2.5", prompt, completion)
    exact = prompt * 0.3 + completion * 1.2
    assert isinstance(cost, int)
    assert cost >= exact - 1e-6 * max(1.0, exact)
    assert cost - 1 < exact + 1e-6 * max(1.0, exact)


def test_a_configured_model_gets_its_configured_price() -> None:
    from decimal import Decimal

    from shared.ai.pricing import register_price

    assert price_for("unit-fallback-model") == price_for("some-unknown-model")  # dearest
    register_price("Unit-Fallback-Model", Decimal("0.15"), Decimal("0.6000001"))
    price = price_for(" unit-fallback-model ")
    assert (price.input_per_mtok, price.output_per_mtok) == (150_000, 600_001)  # rounded up
    assert cost_micro_usd("unit-fallback-model", 1_000_000, 0) == 150_000


def test_a_table_model_keeps_its_table_price() -> None:
    from decimal import Decimal

    from shared.ai.pricing import register_price

    before = price_for("MiniMax-M2.5")
    register_price("MiniMax-M2.5", Decimal(0), Decimal(0))
    assert price_for("MiniMax-M2.5") == before


def test_the_factory_registers_the_fallback_price() -> None:
    from shared.ai.factory import fallback_from_settings
    from shared.config import load_settings

    settings = load_settings(
        env={
            "FALLBACK_AI_BASE_URL": "https://gw.example/v1",
            "FALLBACK_AI_MODEL": "factory-priced-model",
            "FALLBACK_AI_API_KEY": "k",
            "FALLBACK_AI_PRICE_IN": "0.25",
            "FALLBACK_AI_PRICE_OUT": "2",
        }
    )
    fallback_from_settings(settings)
    assert cost_micro_usd("factory-priced-model", 1000, 1000) == 250 + 2000
