"""Prices exactly as the providers bill them at the edges (issue 14, part 1): a
prompt of exactly the long-context threshold bills at the base tier, one token
more bills the whole call at the long-context tier; per provider, through every
dialect (the caller's SDK), the fake upstream reporting what the provider
reports. Claude's 1M-context models bill one price at any prompt size (their
model pages, checked 2026-12-02, list no long-context tier), so their "boundary"
must not move the price. Cache writes by TTL are priced at the boundary too: a
call whose writes are all 5-minute and one with a single 1-hour token."""

from __future__ import annotations

from decimal import Decimal

import pytest

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes.fake_anthropic import Reply as AnthropicReply
from tests.fakes.fake_gemini import Reply as GeminiReply
from tests.fakes.fake_openai import Reply as OpenAIReply

CATALOG = Catalog.load()
M = Decimal(10**6)
OUTPUT = 9
# (model, threshold): the provider's published tier boundaries (catalog.yaml cites them)
EDGES = [("gpt-5.4", 272_000), ("gpt-5.5", 272_000), ("gemini-2.5-pro", 200_000),
         ("gemini-3.1-pro-preview", 200_000), ("claude-sonnet-5-5", 200_000)]
DIALECTS = ("chat", "responses", "messages", "gemini")


def _script(fakes: dict, model: str, prompt_tokens: int) -> None:
    provider = CATALOG.get(model).provider
    if provider == "openai":
        for _ in range(2):  # chat or responses upstream, whichever the dialect uses
            fakes["openai"].push(OpenAIReply(text="ok", prompt_tokens=prompt_tokens,
                                             completion_tokens=OUTPUT))
    elif provider == "anthropic":
        fakes["anthropic"].push(AnthropicReply(text="ok", input_tokens=prompt_tokens,
                                               output_tokens=OUTPUT))
    else:
        fakes["gemini"].push(GeminiReply(text="ok", prompt_tokens=prompt_tokens,
                                         candidates_tokens=OUTPUT))


def _call(customer: Customer, dialect: str, model: str, prompt: str) -> None:
    match dialect:
        case "chat":
            customer.openai().chat.completions.create(
                model=model, max_completion_tokens=OUTPUT * 2,
                messages=[{"role": "user", "content": prompt}])
        case "responses":
            customer.openai().responses.create(model=model, input=prompt, store=False,
                                               max_output_tokens=OUTPUT * 2)
        case "messages":
            customer.anthropic().messages.create(
                model=model, max_tokens=OUTPUT * 2,
                messages=[{"role": "user", "content": prompt}])
        case "gemini":
            from google.genai import types

            client = customer.genai()  # kept: a collected client closes its connection
            client.models.generate_content(
                model=model, contents=prompt,
                config=types.GenerateContentConfig(max_output_tokens=OUTPUT * 2))


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini) -> dict:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("model, threshold", EDGES)
@pytest.mark.parametrize("over", [0, 1], ids=["at", "one-over"])
def test_the_threshold_bills_at_the_providers_tier(make_customer, fakes: dict, dialect: str,
                                                   model: str, threshold: int,
                                                   over: int) -> None:
    customer = make_customer("20")
    prompt_tokens = threshold + over
    _script(fakes, model, prompt_tokens)
    # One token per byte bounds the prompt: the hold covers what the fake reports.
    _call(customer, dialect, model, "x " * ((prompt_tokens + 1) // 2) + "y" * 64)
    prices = CATALOG.get(model).prices
    tier = prices.long_context.prices if over and prices.long_context else prices
    [entry] = customer.charges()
    assert (entry.input_tokens, entry.output_tokens) == (prompt_tokens, OUTPUT)
    assert Decimal(entry.amount) / 10**12 == (prompt_tokens * tier.input
                                              + OUTPUT * tier.output) / M
    if over and prices.long_context is None:
        assert tier is prices  # flat: one token over costs one token more, no more


@pytest.mark.parametrize("ttl_1h", [0, 1], ids=["all-5m", "one-1h-token"])
def test_cache_writes_bill_by_ttl_at_the_boundary(customer: Customer, fakes: dict,
                                                  ttl_1h: int) -> None:
    model = "claude-haiku-4-5"
    prices = CATALOG.get(model).prices
    fakes["anthropic"].push(AnthropicReply(
        text="ok", input_tokens=10, output_tokens=OUTPUT, cache_creation_input_tokens=1000,
        cache_creation_1h_input_tokens=ttl_1h))
    customer.anthropic().messages.create(
        model=model, max_tokens=OUTPUT * 2,
        system=[{"type": "text", "text": "s " * 600,
                 "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": "hi"}])
    [entry] = customer.charges()
    expected = (10 * prices.input + (1000 - ttl_1h) * prices.cache_write
                + ttl_1h * prices.cache_write_1h + OUTPUT * prices.output) / M
    assert Decimal(entry.amount) / 10**12 == expected
