"""Every model through every dialect: the official SDKs of the three dialects,
against a model of each provider (served by fake upstreams over real HTTP),
streaming and not, plain text and a tool-call round trip. Every cell checks
that each call's charge is the upstream's reported usage times the catalog price.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from google import genai
from google.genai import types as gtypes

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes import fake_anthropic, fake_gemini, fake_openai

CATALOG = Catalog.load()
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
QUESTION = "What's the weather in Paris?"


@dataclass
class Answer:
    text: str
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # id, name, args
    raw: Any = None


# ------------------------------------------------------------------ upstream side
@dataclass
class Usage:
    """What the fake reports, and what it must cost."""

    input: int
    output: int
    cached: int = 0
    cache_write: int = 0

    def cost(self, model: str) -> Decimal:
        p = CATALOG.get(model).prices
        write_price = p.cache_write if p.cache_write is not None else p.input
        uncached = self.input - self.cached - self.cache_write
        return (uncached * p.input + self.cached * p.cached_input
                + self.cache_write * write_price + self.output * p.output) / 1_000_000


class Upstreams:
    def __init__(self, openai_fake, anthropic_fake, gemini_fake) -> None:
        self.fakes = {"openai": openai_fake, "anthropic": anthropic_fake, "gemini": gemini_fake}

    def script_text(self, provider: str, text: str) -> Usage:
        if provider == "openai":
            self.fakes[provider].push(fake_openai.Reply(text=text, prompt_tokens=31,
                                                        cached_tokens=11,
                                                        completion_tokens=9))
            return Usage(input=31, output=9, cached=11)
        if provider == "anthropic":
            self.fakes[provider].push(fake_anthropic.Reply(
                text=text, input_tokens=20, cache_read_input_tokens=8,
                cache_creation_input_tokens=5, output_tokens=9))
            return Usage(input=33, output=9, cached=8, cache_write=5)
        self.fakes[provider].push(fake_gemini.Reply(text=text, prompt_tokens=25,
                                                    candidates_tokens=6, thoughts_tokens=4,
                                                    cached_tokens=10))
        return Usage(input=25, output=10, cached=10)

    def script_call(self, provider: str) -> Usage:
        call = {"id": "call_up_1", "name": "get_weather", "arguments": {"city": "Paris"}}
        if provider == "openai":
            self.fakes[provider].push(fake_openai.Reply(tool_calls=[call], prompt_tokens=60,
                                                        completion_tokens=17))
            return Usage(input=60, output=17)
        if provider == "anthropic":
            self.fakes[provider].push(fake_anthropic.Reply(
                tool_calls=[{"id": "toolu_up_1", "name": "get_weather",
                             "input": {"city": "Paris"}}], input_tokens=60, output_tokens=42))
            return Usage(input=60, output=42)
        self.fakes[provider].push(fake_gemini.Reply(
            function_calls=[{"name": "get_weather", "args": {"city": "Paris"}}],
            prompt_tokens=60, candidates_tokens=15))
        return Usage(input=60, output=15)

    def last_body(self, provider: str) -> dict[str, Any]:
        return self.fakes[provider].requests[-1].body

    def tool_result_seen(self, provider: str) -> Any:
        """The tool result as the provider received it in the follow-up turn."""
        body = self.last_body(provider)
        if provider == "openai":
            return [m for m in body["messages"] if m["role"] == "tool"]
        if provider == "anthropic":
            return [b for m in body["messages"] if isinstance(m["content"], list)
                    for b in m["content"] if b.get("type") == "tool_result"]
        return [p for c in body["contents"] for p in c.get("parts", [])
                if "functionResponse" in p or "function_response" in p]


# ------------------------------------------------------------------ client side
class OpenAIDriver:
    def __init__(self, customer: Customer) -> None:
        self.client = customer.openai()

    def ask(self, model: str, stream: bool, tools: bool, history=None) -> Answer:
        messages = history or [{"role": "user", "content": QUESTION}]
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            kwargs["tools"] = [{"type": "function", "function": WEATHER}]
        if stream:
            with self.client.chat.completions.stream(**kwargs) as s:
                for _ in s:
                    pass
                completion = s.get_final_completion()
        else:
            completion = self.client.chat.completions.create(**kwargs)
        message = completion.choices[0].message
        calls = [(c.id, c.function.name, json.loads(c.function.arguments or "{}"))
                 for c in message.tool_calls or []]
        return Answer(message.content or "", calls, raw=message)

    def follow_up(self, first: Answer) -> list[dict[str, Any]]:
        return [{"role": "user", "content": QUESTION},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": i, "type": "function",
                     "function": {"name": n, "arguments": json.dumps(a)}}
                    for i, n, a in first.calls]},
                *({"role": "tool", "tool_call_id": i, "content": "18C and sunny"}
                  for i, _, _ in first.calls)]


class AnthropicDriver:
    def __init__(self, customer: Customer) -> None:
        self.client = anthropic.Anthropic(base_url=customer.url, api_key=customer.key,
                                          max_retries=0)

    def ask(self, model: str, stream: bool, tools: bool, history=None) -> Answer:
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 1024,
                                  "messages": history or [{"role": "user", "content": QUESTION}]}
        if tools:
            kwargs["tools"] = [{"name": WEATHER["name"], "description": WEATHER["description"],
                                "input_schema": WEATHER["parameters"]}]
        if stream:
            with self.client.messages.stream(**kwargs) as s:
                message = s.get_final_message()
        else:
            message = self.client.messages.create(**kwargs)
        text = "".join(b.text for b in message.content if b.type == "text")
        calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
        return Answer(text, calls, raw=message)

    def follow_up(self, first: Answer) -> list[dict[str, Any]]:
        return [{"role": "user", "content": QUESTION},
                {"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                  for b in first.raw.content]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": i, "content": "18C and sunny"}
                    for i, _, _ in first.calls]}]


class GeminiDriver:
    def __init__(self, customer: Customer) -> None:
        self.client = genai.Client(api_key=customer.key, http_options=gtypes.HttpOptions(
            base_url=customer.url, api_version="v1beta"))

    def ask(self, model: str, stream: bool, tools: bool, history=None) -> Answer:
        config = gtypes.GenerateContentConfig(
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True))
        if tools:
            config.tools = [gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration(
                name=WEATHER["name"], description=WEATHER["description"],
                parameters_json_schema=WEATHER["parameters"])])]
        contents = history or QUESTION
        if stream:
            text, calls, parts = "", [], []
            for chunk in self.client.models.generate_content_stream(
                    model=model, contents=contents, config=config):
                text += chunk.text or ""
                for call in chunk.function_calls or []:
                    calls.append((call.id or "", call.name, dict(call.args or {})))
                for candidate in chunk.candidates or []:
                    parts += [p for p in (candidate.content.parts or []) if p.function_call]
            return Answer(text, calls, raw=parts)
        response = self.client.models.generate_content(model=model, contents=contents,
                                                       config=config)
        calls = [(c.id or "", c.name, dict(c.args or {})) for c in response.function_calls or []]
        parts = [p for p in response.candidates[0].content.parts if p.function_call]
        return Answer(response.text or "", calls, raw=parts)

    def follow_up(self, first: Answer) -> list[gtypes.Content]:
        return [gtypes.Content(role="user", parts=[gtypes.Part(text=QUESTION)]),
                gtypes.Content(role="model", parts=first.raw),
                gtypes.Content(role="user", parts=[
                    gtypes.Part(function_response=gtypes.FunctionResponse(
                        id=i or None, name=n, response={"result": "18C and sunny"}))
                    for i, n, _ in first.calls])]


DRIVERS = {"openai": OpenAIDriver, "anthropic": AnthropicDriver, "gemini": GeminiDriver}


@pytest.fixture
def upstreams(fake_openai, fake_anthropic, fake_gemini) -> Upstreams:
    return Upstreams(fake_openai, fake_anthropic, fake_gemini)


def assert_charged(customer: Customer, model: str, usages: list[Usage]) -> None:
    charges = sorted(customer.charges(), key=lambda e: e.created_ms)
    assert [(e.model, e.status) for e in charges] == [(model, "ok")] * len(usages)
    for entry, usage in zip(charges, usages, strict=True):
        assert (entry.input_tokens, entry.output_tokens) == (usage.input, usage.output)
        assert (entry.cached_input_tokens) == usage.cached
        assert Decimal(entry.amount) / 10**12 == usage.cost(model)
    customer.assert_books_balance()


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("dialect", list(DRIVERS))
def test_text(dialect: str, provider: str, stream: bool, customer: Customer,
              upstreams: Upstreams):
    model = MODELS[provider]
    usage = upstreams.script_text(provider, "Sunny, 18 degrees.")
    answer = DRIVERS[dialect](customer).ask(model, stream, tools=False)
    assert answer.text == "Sunny, 18 degrees."
    assert answer.calls == []
    assert_charged(customer, model, [usage])


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("dialect", list(DRIVERS))
def test_tool_round_trip(dialect: str, provider: str, stream: bool, customer: Customer,
                         upstreams: Upstreams):
    model = MODELS[provider]
    driver = DRIVERS[dialect](customer)
    first_usage = upstreams.script_call(provider)
    first = driver.ask(model, stream, tools=True)
    assert [(name, args) for _, name, args in first.calls] == [("get_weather",
                                                                {"city": "Paris"})]
    if dialect != "gemini":
        assert first.calls[0][0], "OpenAI and Anthropic callers need a call id"

    second_usage = upstreams.script_text(provider, "It is sunny.")
    second = driver.ask(model, stream, tools=True, history=driver.follow_up(first))
    assert second.text == "It is sunny."
    results = upstreams.tool_result_seen(provider)
    assert len(results) == 1 and "18C and sunny" in json.dumps(results)
    assert_charged(customer, model, [first_usage, second_usage])
