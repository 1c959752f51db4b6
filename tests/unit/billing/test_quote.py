"""afk.billing.quote: worst-case holds, cap and balance clamps, exact usage cost."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from afk import ir
from afk.billing.quote import (
    billed_searches,
    estimate_input_tokens,
    make_quote,
    search_bound,
    usage_cost,
)
from afk.catalog import Model, Prices, WebSearchSpec
from afk.errors import InsufficientCredits

# 1 USD / 1e6 input tokens = 1 000 000 pico per token; 0.25 -> 250 000; 4 USD -> 4 000 000.
MODEL = Model(id="test-model", provider="openai", upstream="test-model",
              display_name="Test", max_output_tokens=1000, context_window=100_000,
              prices=Prices(input=Decimal("1"), cached_input=Decimal("0.25"),
                            output=Decimal("4")))
IN, CACHED, OUT = 1_000_000, 250_000, 4_000_000


def test_model_prices_in_pico_per_token() -> None:
    assert (MODEL.prices.input_pico, MODEL.prices.cached_input_pico,
            MODEL.prices.output_pico) == (IN, CACHED, OUT)


def test_no_cap_no_balance_uses_model_max() -> None:
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=None, balance=None)
    assert quote.max_output_tokens == 1000
    assert quote.amount == 100 * IN + 1000 * OUT
    assert quote.input_tokens == 100
    assert not quote.lowered


def test_requested_below_max_is_kept() -> None:
    quote = make_quote(MODEL, input_tokens=100, requested=200, cap=None, balance=None)
    assert (quote.max_output_tokens, quote.lowered) == (200, False)
    assert quote.amount == 100 * IN + 200 * OUT


def test_requested_above_max_is_clamped_to_max() -> None:
    quote = make_quote(MODEL, input_tokens=100, requested=5000, cap=None, balance=None)
    assert (quote.max_output_tokens, quote.lowered) == (1000, True)


@pytest.mark.parametrize("cap", [
    100 * IN + OUT,              # exactly one output token
    100 * IN + 37 * OUT + 1,     # just above 37 tokens
    100 * IN + 500 * OUT - 1,    # just below 500 tokens
    100 * IN + 999 * OUT,
])
def test_cap_lowers_max_tokens_to_largest_that_fits(cap: int) -> None:
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=cap, balance=None)
    assert quote.lowered
    assert quote.amount <= cap
    assert quote.amount == 100 * IN + quote.max_output_tokens * OUT
    # one more token would not fit
    assert 100 * IN + (quote.max_output_tokens + 1) * OUT > cap
    assert quote.max_output_tokens >= 1


def test_generous_cap_changes_nothing() -> None:
    cap = 100 * IN + 1000 * OUT
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=cap, balance=None)
    assert (quote.max_output_tokens, quote.lowered, quote.amount) == (1000, False, cap)


def test_cap_smaller_than_prompt_is_cap_exceeded() -> None:
    with pytest.raises(InsufficientCredits) as info:
        make_quote(MODEL, input_tokens=100, requested=None, cap=50 * IN, balance=None)
    assert info.value.code == "cap_exceeded"
    assert info.value.status == 402
    assert "test-model" in info.value.message


def test_balance_none_is_not_a_limit() -> None:
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=None, balance=None)
    assert quote.max_output_tokens == 1000


def test_low_balance_without_requested_lowers() -> None:
    balance = 100 * IN + 250 * OUT + 123
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=None, balance=balance)
    assert quote.lowered
    assert quote.max_output_tokens == 250
    assert quote.amount <= balance


def test_ample_balance_does_not_lower() -> None:
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=None,
                       balance=10**15)
    assert (quote.max_output_tokens, quote.lowered) == (1000, False)


def test_explicit_requested_unaffordable_is_refused_with_affordable_count() -> None:
    balance = 100 * IN + 321 * OUT
    with pytest.raises(InsufficientCredits) as info:
        make_quote(MODEL, input_tokens=100, requested=800, cap=None, balance=balance)
    assert info.value.code == "insufficient_credits"
    assert "321" in info.value.message


def test_explicit_requested_affordable_is_kept() -> None:
    balance = 100 * IN + 321 * OUT
    quote = make_quote(MODEL, input_tokens=100, requested=300, cap=None, balance=balance)
    assert (quote.max_output_tokens, quote.lowered) == (300, False)


def test_balance_below_prompt_is_insufficient() -> None:
    with pytest.raises(InsufficientCredits) as info:
        make_quote(MODEL, input_tokens=100, requested=None, cap=None, balance=99 * IN)
    assert info.value.code == "insufficient_credits"


def test_cap_and_balance_both_apply() -> None:
    cap = 100 * IN + 600 * OUT
    balance = 100 * IN + 400 * OUT
    quote = make_quote(MODEL, input_tokens=100, requested=None, cap=cap, balance=balance)
    assert quote.max_output_tokens == 400
    assert quote.amount <= min(cap, balance)


def test_usage_cost_prices_cached_tokens_at_cached_price() -> None:
    usage = ir.Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=50)
    assert usage_cost(MODEL, usage) == 600 * IN + 400 * CACHED + 50 * OUT


def test_usage_cost_clips_cached_to_input() -> None:
    usage = ir.Usage(input_tokens=10, cached_input_tokens=99, output_tokens=0)
    assert usage_cost(MODEL, usage) == 10 * CACHED


def test_usage_cost_of_catalog_price_is_exact() -> None:
    model = Model(id="m", provider="openai", upstream="m", display_name="m",
                  max_output_tokens=10, context_window=10,
                  prices=Prices(input=Decimal("0.15"), cached_input=Decimal("0.075"),
                                output=Decimal("0.60")))
    # 1 input token at 0.15 USD per million = 0.00000015 USD = 150 000 pico exactly
    assert usage_cost(model, ir.Usage(input_tokens=1)) == 150_000
    assert usage_cost(model, ir.Usage(input_tokens=3, cached_input_tokens=1,
                                      output_tokens=7)) == (2 * 150_000 + 75_000
                                                            + 7 * 600_000)


def _request(text: str) -> ir.Request:
    return ir.Request(model="m", messages=[ir.Message(role="user",
                                                      content=[ir.Text(text=text)])])


ENGLISH = ("The quick brown fox jumps over the lazy dog, then asks the gateway to "
           "summarise forty-two documents about tokenization, billing and caching. ") * 20
CJK = "这是一个用于估算令牌数量的中文句子，它应该被保守地高估。日本語の文章も含まれています。" * 20
EMOJI = "🙂🚀🎉👨‍👩‍👧‍👦🏳️‍🌈" * 30


def test_estimate_english_above_word_count() -> None:
    estimate = estimate_input_tokens(_request(ENGLISH))
    assert estimate >= len(ENGLISH.split())
    assert estimate >= len(ENGLISH) / 4  # ~4 characters per token for English


def test_estimate_cjk_above_character_count() -> None:
    estimate = estimate_input_tokens(_request(CJK))
    assert estimate >= len(CJK) / 2
    assert estimate >= len(CJK)  # tokenizers give at most ~1 token per common CJK character


def test_estimate_emoji_above_code_point_count() -> None:
    estimate = estimate_input_tokens(_request(EMOJI))
    assert estimate >= len(EMOJI)  # code points, ZWJ and variation selectors included


def test_estimate_grows_with_every_part() -> None:
    base = _request("hello")
    with_tool = _request("hello")
    with_tool.tools = [ir.Tool(name="get_weather", description="Weather for a city",
                               parameters={"type": "object",
                                           "properties": {"city": {"type": "string"}}})]
    with_image = _request("hello")
    with_image.messages[0].content.append(ir.Image(url="https://example.com/a.png"))
    with_call = _request("hello")
    with_call.messages.append(ir.Message(role="assistant", content=[
        ir.ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}')]))
    b = estimate_input_tokens(base)
    assert estimate_input_tokens(with_tool) > b
    assert estimate_input_tokens(with_image) >= b + 1000
    assert estimate_input_tokens(with_call) > b


# ---------------------------------------------------------------- hosted web search
SEARCHING = Model(id="searching", provider="anthropic", upstream="searching",
                  display_name="S", max_output_tokens=1000, context_window=100_000,
                  prices=Prices(input=Decimal("1"), cached_input=Decimal("0.25"),
                                output=Decimal("4"), web_search_per_1000=Decimal("10")),
                  web_search=WebSearchSpec(counted="search", content_tokens=2000))
GROUNDED = dataclasses.replace(SEARCHING, web_search=WebSearchSpec(counted="request",
                                                                   content_tokens=2000))
SEARCH_FEE = 10_000_000_000  # $10 / 1,000 searches = $0.01 = 10^10 pico


def test_each_search_is_billed_at_its_fee_on_top_of_the_tokens() -> None:
    usage = ir.Usage(input_tokens=100, output_tokens=10, web_searches=3)
    assert billed_searches(SEARCHING, usage) == 3
    assert usage_cost(SEARCHING, usage) == 100 * IN + 10 * OUT + 3 * SEARCH_FEE
    # Gemini 2.x bills one fee per grounded request, whatever its queries.
    assert billed_searches(GROUNDED, usage) == 1
    assert usage_cost(GROUNDED, usage) == 100 * IN + 10 * OUT + SEARCH_FEE
    # A model without search never bills one.
    assert usage_cost(MODEL, usage) == 100 * IN + 10 * OUT


def test_the_worst_case_of_searches_is_bounded_by_max_uses() -> None:
    request = ir.Request(model="searching", messages=[],
                         web_search=ir.WebSearch(max_uses=3))
    assert search_bound(SEARCHING, request) == (3 * 2000, 3 * SEARCH_FEE)
    assert search_bound(GROUNDED, request) == (3 * 2000, SEARCH_FEE)
    assert search_bound(SEARCHING, ir.Request(model="searching", messages=[])) == (0, 0)
    tokens, fees = search_bound(SEARCHING, request)
    quote = make_quote(SEARCHING, input_tokens=100 + tokens, requested=10, cap=None,
                       balance=None, fees=fees)
    assert quote.amount == (100 + 6000) * IN + 10 * OUT + 3 * SEARCH_FEE
    # A cap below the searches' worst case leaves no room: 402 before any call.
    with pytest.raises(InsufficientCredits):
        make_quote(SEARCHING, input_tokens=100 + tokens, requested=None,
                   cap=3 * SEARCH_FEE, balance=None, fees=fees)
