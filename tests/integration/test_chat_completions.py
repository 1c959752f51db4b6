"""POST /v1/chat/completions end to end: the official openai SDK against the
gateway served over real HTTP, a fake OpenAI upstream, DynamoDB from moto."""

from __future__ import annotations

import json
from decimal import Decimal

from afk.catalog import Catalog
from afk.money import from_pico
from tests.conftest import UPSTREAM_KEY, Customer
from tests.fakes.fake_openai import FakeOpenAI, Reply

MODEL = "gpt-4o-mini"
PRICES = Catalog.load().get(MODEL).prices
MESSAGES = [{"role": "user", "content": "Say hello."}]


def expected_cost(prompt: int, completion: int, cached: int = 0) -> Decimal:
    """Usage × catalog price, computed here independently of the gateway."""
    million = Decimal(1_000_000)
    return ((prompt - cached) * PRICES.input + cached * PRICES.cached_input
            + completion * PRICES.output) / million


def test_non_streaming_is_billed_exactly_and_labelled(customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(text="Hello there!", prompt_tokens=21, completion_tokens=7))
    before = customer.balance()

    raw = customer.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES)
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello there!"
    assert completion.usage.prompt_tokens == 21
    cost = expected_cost(21, 7)
    [entry] = customer.charges()
    assert Decimal(raw.headers["x-afk-cost"]) == cost
    assert entry.request_id == raw.headers["x-afk-request-id"]
    assert (entry.input_tokens, entry.output_tokens, entry.model) == (21, 7, MODEL)
    assert before - customer.balance() == cost
    customer.assert_books_balance()

    # The upstream got our provider key, never the customer's, and an output cap.
    sent = fake_openai.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["max_completion_tokens"] == 16384


def test_cached_input_tokens_are_billed_at_the_cached_price(customer: Customer,
                                                             fake_openai: FakeOpenAI):
    fake_openai.push(Reply(prompt_tokens=1000, cached_tokens=600, completion_tokens=10))
    raw = customer.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES)
    assert Decimal(raw.headers["x-afk-cost"]) == expected_cost(1000, 10, cached=600)
    assert customer.charges()[0].cached_input_tokens == 600


def test_stream_without_include_usage_hides_usage_but_bills_it(customer: Customer,
                                                               fake_openai: FakeOpenAI):
    fake_openai.push(Reply(text="One two three", prompt_tokens=15, completion_tokens=3))
    chunks = list(customer.openai().chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three"
    assert all(c.choices for c in chunks), "the caller did not ask for the usage chunk"
    assert all(c.usage is None for c in chunks)
    # ...but the gateway asked the upstream for it, and billed from it.
    assert fake_openai.requests[-1].body["stream_options"] == {"include_usage": True}
    [entry] = customer.charges()
    assert (entry.input_tokens, entry.output_tokens) == (15, 3)
    assert from_pico(entry.amount) == 10 - customer.balance() == expected_cost(15, 3)
    customer.assert_books_balance()


def test_stream_without_include_usage_has_no_usage_key_on_the_wire(customer: Customer,
                                                                   fake_openai: FakeOpenAI):
    """Issue 13: OpenAI leaves `usage` out of every chunk of a stream that did not ask
    for it; the gateway relayed the upstream's `"usage": null` (it always asks)."""
    fake_openai.push(Reply(text="Hi there", prompt_tokens=5, completion_tokens=2))
    with customer.http() as http, http.stream(
            "POST", "/v1/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hi there"
    assert [c for c in chunks if "usage" in c] == []


def test_stream_with_include_usage_passes_the_usage_chunk(customer: Customer,
                                                          fake_openai: FakeOpenAI):
    fake_openai.push(Reply(text="Hi!", prompt_tokens=9, completion_tokens=2))
    chunks = list(customer.openai().chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 2)
    assert 10 - customer.balance() == expected_cost(9, 2)


def test_stream_helper_accumulates_tool_calls(customer: Customer, fake_openai: FakeOpenAI):
    fake_openai.push(Reply(tool_calls=[{"id": "call_Qx7", "name": "get_weather",
                                        "arguments": {"city": "Paris"}}], prompt_tokens=40))
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}}}}]
    with customer.openai().chat.completions.stream(model=MODEL, messages=MESSAGES,
                                                   tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()

    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name) == ("call_Qx7", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert fake_openai.requests[-1].body["tools"] == tools  # passthrough keeps the body
    assert 10 - customer.balance() == expected_cost(40, 17)


def test_echo_model_works_offline_and_bills_words(customer: Customer):
    client = customer.openai()
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "ping pong"}])
    assert completion.choices[0].message.content == "Echo: ping pong"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "ping pong"}], stream=True)
        if c.choices)
    assert streamed == "Echo: ping pong"
    echo = Catalog.load().get("echo").prices
    per_call = (2 * echo.input + 3 * echo.output) / 1_000_000
    assert 10 - customer.balance() == 2 * per_call
    customer.assert_books_balance()
