"""Amazon Bedrock through every dialect's official SDK: text, a tool round trip and an
image, streaming and not, each call billed exactly at the catalog's Bedrock price,
against a fake Bedrock runtime that speaks Converse / ConverseStream over real HTTP
(binary event-stream framing) and verifies each request's SigV4 signature."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from botocore.credentials import Credentials
from google.genai import types as gtypes

from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.providers.bedrock import BedrockProvider
from afk.settings import Upstream
from tests.conftest import Customer, _served, open_account
from tests.fakes import fake_bedrock
from tests.fakes.fake_bedrock import FakeBedrock, Reply
from tests.fakes.upstream import fake_vector
from tests.integration.test_matrix import (
    QUESTION,
    WEATHER,
    Answer,
    AnthropicDriver,
    GeminiDriver,
    OpenAIDriver,
    Usage,
    assert_charged,
)
from tests.support.media import png
from tests.support.servers import serve

CLAUDE = "claude-haiku-4-5-bedrock"
NOVA = "nova-micro"
UPSTREAM = {CLAUDE: "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            NOVA: "us.amazon.nova-micro-v1:0"}  # the catalog's inference profiles
ROLE = Credentials(fake_bedrock.ACCESS_KEY, fake_bedrock.SECRET_KEY, fake_bedrock.SESSION_TOKEN)


class ResponsesDriver:
    """The OpenAI SDK's Responses API (not stored: the chain is the caller's)."""

    def __init__(self, customer: Customer) -> None:
        self.client = customer.openai()

    def ask(self, model: str, stream: bool, tools: bool, history=None) -> Answer:
        kwargs: dict[str, Any] = {"model": model, "input": history or QUESTION, "store": False}
        if tools:
            kwargs["tools"] = [{"type": "function", **WEATHER}]
        if stream:
            with self.client.responses.stream(**kwargs) as s:
                for _ in s:
                    pass
                response = s.get_final_response()
        else:
            response = self.client.responses.create(**kwargs)
        calls = [(i.call_id, i.name, json.loads(i.arguments or "{}"))
                 for i in response.output if i.type == "function_call"]
        return Answer(response.output_text, calls, raw=response)

    def follow_up(self, first: Answer) -> list[dict[str, Any]]:
        return [{"role": "user", "content": QUESTION},
                *({"type": "function_call", "call_id": i, "name": n,
                   "arguments": json.dumps(a)} for i, n, a in first.calls),
                *({"type": "function_call_output", "call_id": i, "output": "18C and sunny"}
                  for i, _, _ in first.calls)]


DRIVERS = {"chat": OpenAIDriver, "responses": ResponsesDriver, "anthropic": AnthropicDriver,
           "gemini": GeminiDriver}
IMAGE = png(64, 48)
IMAGE_B64 = base64.b64encode(IMAGE).decode()


def ask_about_image(dialect: str, customer: Customer, model: str, stream: bool) -> str:
    """`What is in this picture?` with a PNG attached, in each dialect's own shape."""
    question = "What is in this picture?"
    data_url = f"data:image/png;base64,{IMAGE_B64}"
    if dialect == "chat":
        return OpenAIDriver(customer).ask(model, stream, tools=False, history=[
            {"role": "user", "content": [{"type": "text", "text": question},
                                         {"type": "image_url", "image_url": {"url": data_url}}]}
        ]).text
    if dialect == "responses":
        return ResponsesDriver(customer).ask(model, stream, tools=False, history=[
            {"role": "user", "content": [{"type": "input_text", "text": question},
                                         {"type": "input_image", "image_url": data_url}]}]).text
    if dialect == "anthropic":
        return AnthropicDriver(customer).ask(model, stream, tools=False, history=[
            {"role": "user", "content": [
                {"type": "text", "text": question},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": IMAGE_B64}}]}]).text
    return GeminiDriver(customer).ask(model, stream, tools=False, history=[
        gtypes.Content(role="user", parts=[gtypes.Part(text=question),
                                           gtypes.Part.from_bytes(data=IMAGE,
                                                                  mime_type="image/png")])]).text


# ------------------------------------------------------------------ fixtures
bedrock_server, bedrock = _served(FakeBedrock, "bedrock")


def _gateway_url(settings, store, url: str, region: str):
    configured = replace(settings, bedrock=True, region=region,
                         upstreams={**settings.upstreams, "bedrock": Upstream(url)})
    provider = BedrockProvider(configured, credentials=ROLE)
    return serve(create_app("local", Gateway(configured, store=store,
                                             providers={"bedrock": provider})))


@pytest.fixture(scope="module")
def bedrock_url(bedrock_server, settings, store):
    with _gateway_url(settings, store, bedrock_server[1], fake_bedrock.REGION) as url:
        yield url


@pytest.fixture
def buyer(store, bedrock_url) -> Customer:
    return open_account(store, bedrock_url)


def not_charged(customer: Customer) -> bool:
    """Nothing billed: no ledger charge, or only zero-amount failure records."""
    customer.assert_books_balance()
    return all(e.amount == 0 for e in customer.charges())


def tool_results_seen(fake: FakeBedrock) -> list[dict[str, Any]]:
    body = fake.requests[-1].body
    return [b["toolResult"] for m in body["messages"] for b in m["content"]
            if "toolResult" in b]


# ------------------------------------------------------------------ the matrix
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("model", [CLAUDE, NOVA])
@pytest.mark.parametrize("dialect", list(DRIVERS))
def test_text(dialect, model, stream, buyer, bedrock):
    # Converse reports cache reads and writes beside inputTokens, not inside it.
    bedrock.push(Reply(text="Sunny, 18 degrees.", input_tokens=20, cache_read=8,
                       cache_write=5, output_tokens=9))
    answer = DRIVERS[dialect](buyer).ask(model, stream, tools=False)
    assert answer.text == "Sunny, 18 degrees."
    seen = bedrock.requests[-1]
    upstream = UPSTREAM[model]
    assert seen.path == f"/model/{upstream}/{'converse-stream' if stream else 'converse'}"
    assert seen.body["messages"] == [{"role": "user", "content": [{"text": QUESTION}]}]
    assert bedrock.signatures_checked == 1
    assert_charged(buyer, model, [Usage(input=33, output=9, cached=8, cache_write=5)])


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("dialect", list(DRIVERS))
def test_tool_round_trip(dialect, stream, buyer, bedrock):
    driver = DRIVERS[dialect](buyer)
    bedrock.push(Reply(text=None, tool_calls=[{"id": "tooluse_Ab1", "name": "get_weather",
                                               "input": {"city": "Paris"}}],
                       input_tokens=410, output_tokens=38))
    first = driver.ask(CLAUDE, stream, tools=True)
    assert [(name, args) for _, name, args in first.calls] == [("get_weather",
                                                                {"city": "Paris"})]
    sent = bedrock.requests[-1].body["toolConfig"]["tools"]
    assert sent == [{"toolSpec": {"name": "get_weather", "description": WEATHER["description"],
                                  "inputSchema": {"json": WEATHER["parameters"]}}}]

    bedrock.push(Reply(text="It is sunny.", input_tokens=470, output_tokens=6))
    second = driver.ask(CLAUDE, stream, tools=True, history=driver.follow_up(first))
    assert second.text == "It is sunny."
    history = bedrock.requests[-1].body["messages"]
    uses = [b["toolUse"] for m in history for b in m["content"] if "toolUse" in b]
    assert [(u["name"], u["input"]) for u in uses] == [("get_weather", {"city": "Paris"})]
    results = tool_results_seen(bedrock)
    assert len(results) == 1 and "18C and sunny" in json.dumps(results)
    if dialect != "gemini":  # Gemini callers carry no call ids; the others must round-trip
        assert results[0]["toolUseId"] == uses[0]["toolUseId"] == "tooluse_Ab1"
    assert_charged(buyer, CLAUDE, [Usage(input=410, output=38), Usage(input=470, output=6)])


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("dialect", list(DRIVERS))
def test_image(dialect, stream, buyer, bedrock):
    bedrock.push(Reply(text="A small grey rectangle.", input_tokens=31, output_tokens=7))
    assert ask_about_image(dialect, buyer, CLAUDE, stream) == "A small grey rectangle."
    blocks = bedrock.requests[-1].body["messages"][0]["content"]
    images = [b["image"] for b in blocks if "image" in b]
    assert images == [{"format": "png", "source": {"bytes": IMAGE_B64}}]
    assert {"text": "What is in this picture?"} in blocks
    assert_charged(buyer, CLAUDE, [Usage(input=31, output=7)])


def test_system_prompt_and_stop_sequences_travel_as_converse_fields(buyer, bedrock):
    buyer.openai().chat.completions.create(
        model=NOVA, max_tokens=300, stop=["END"], temperature=0.2,
        messages=[{"role": "system", "content": "Answer in French."},
                  {"role": "user", "content": "Hi"}])
    body = bedrock.requests[-1].body
    assert body["system"] == [{"text": "Answer in French."}]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.2,
                                       "stopSequences": ["END"]}


# ------------------------------------------------------------------ failures
def test_a_throttled_call_is_retried_before_any_byte_and_billed_once(buyer, bedrock):
    bedrock.push(Reply(status=429, error_type="ThrottlingException"),
                 Reply(text="Finally.", input_tokens=10, output_tokens=2))
    answer = OpenAIDriver(buyer).ask(NOVA, False, tools=False)
    assert answer.text == "Finally."
    assert len(bedrock.requests) == 2
    assert_charged(buyer, NOVA, [Usage(input=10, output=2)])


def test_a_validation_error_is_the_callers_400_in_its_own_words(buyer, bedrock):
    bedrock.push(Reply(status=400, error_type="ValidationException"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        AnthropicDriver(buyer).ask(NOVA, False, tools=False)
    assert "bedrock" in refused.value.message and "Scripted failure" not in str(refused.value)
    assert len(bedrock.requests) == 1 and not_charged(buyer)


def test_an_exception_mid_stream_reaches_the_caller_as_an_error(buyer, bedrock):
    bedrock.push(Reply(text="Partial answer", stream_exception="modelStreamErrorException"))
    with pytest.raises(anthropic.APIStatusError):
        AnthropicDriver(buyer).ask(CLAUDE, True, tools=False)
    buyer.assert_books_balance()
    # Text reached the caller but Bedrock reported no usage: billed the gateway's
    # estimate of what streamed (as on every provider), marked estimated.
    (entry,) = buyer.charges()
    assert (entry.status, entry.estimated) == ("error", True) and entry.output_tokens > 0
    assert entry.amount > 0


def test_a_stream_cut_before_its_metadata_is_an_error_not_a_free_answer(buyer, bedrock):
    bedrock.push(Reply(text="Cut short", truncate=True))
    with pytest.raises(openai.APIError):
        OpenAIDriver(buyer).ask(NOVA, True, tools=False)
    buyer.assert_books_balance()


def test_signed_for_another_region_bedrock_refuses_and_the_gateway_says_so(
        bedrock_server, settings, store):
    fake, url = bedrock_server
    fake.reset()
    with _gateway_url(settings, store, url, "eu-west-1") as elsewhere:
        customer = open_account(store, elsewhere)
        with pytest.raises(openai.PermissionDeniedError) as failed:
            OpenAIDriver(customer).ask(NOVA, False, tools=False)
    assert failed.value.message.endswith(
        "The bedrock upstream refused this gateway's key. The gateway's operator must "
        "check its AWS credentials and the Bedrock model access of its Region.")
    assert fake.signatures_checked == 0 and len(fake.requests) == 1
    assert not_charged(customer)


def test_bedrock_models_are_listed_only_where_bedrock_is_enabled(buyer, customer):
    enabled = {m.id for m in buyer.openai().models.list()}
    assert {CLAUDE, NOVA, "llama-3.3-70b", "mistral-large-2402"} <= enabled
    assert not {CLAUDE, NOVA} & {m.id for m in customer.openai().models.list()}
    with pytest.raises(openai.PermissionDeniedError) as refused:
        OpenAIDriver(customer).ask(NOVA, False, tools=False)
    assert "AFK_BEDROCK=1" in refused.value.message


def test_titan_embeddings_signed_one_input_a_call_billed_on_bedrocks_count(buyer, bedrock):
    texts = ["Bedrock embeds this", "and this"]
    result = buyer.openai().embeddings.create(model="titan-embed-text-v2", input=texts,
                                              dimensions=256)
    assert [d.embedding for d in result.data] == [fake_vector(t, 256) for t in texts]
    assert [(r.path, r.body) for r in bedrock.requests] == [
        ("/model/amazon.titan-embed-text-v2:0/invoke", {"inputText": t, "dimensions": 256})
        for t in texts]
    assert bedrock.signatures_checked == 2
    tokens = 4 + 2  # the fake's inputTextTokenCount: a token per 4 bytes
    assert result.usage.prompt_tokens == tokens
    (entry,) = buyer.charges()
    assert (entry.model, entry.input_tokens, entry.estimated) == ("titan-embed-text-v2",
                                                                  tokens, False)
    assert Decimal(entry.amount) / 10**12 == tokens * Decimal("0.02") / 10**6


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_claudes_thinking_on_bedrock_round_trips_with_its_signature(stream, buyer, bedrock):
    client = anthropic.Anthropic(base_url=buyer.url, api_key=buyer.key, max_retries=0)
    bedrock.push(Reply(reasoning="Paris is in France.", text="Sunny.",
                              input_tokens=30, output_tokens=40))
    kwargs: dict[str, Any] = dict(model=CLAUDE, max_tokens=4096,
                                  thinking={"type": "enabled", "budget_tokens": 2048},
                                  messages=[{"role": "user", "content": QUESTION}])
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    sent = bedrock.requests[-1].body
    assert sent["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert "temperature" not in sent["inferenceConfig"]
    thinking, text = message.content
    assert (thinking.type, thinking.thinking, text.text) == ("thinking",
                                                            "Paris is in France.", "Sunny.")
    # The caller sends the turn back: Bedrock gets its own reasoning, signature intact.
    bedrock.push(Reply(text="Still sunny.", input_tokens=50, output_tokens=3))
    client.messages.create(**{**kwargs, "messages": [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                          for b in message.content]},
        {"role": "user", "content": "And tomorrow?"}]})
    assert bedrock.requests[-1].body["messages"][1]["content"][0] == {"reasoningContent": {
        "reasoningText": {"text": "Paris is in France.",
                          "signature": Reply().signature}}}
    assert_charged(buyer, CLAUDE, [Usage(input=30, output=40), Usage(input=50, output=3)])


def test_an_openai_reasoning_effort_becomes_a_thinking_budget_under_max_tokens(buyer,
                                                                              bedrock):
    buyer.openai().chat.completions.create(
        model=CLAUDE, reasoning_effort="high", max_completion_tokens=5000,
        messages=[{"role": "user", "content": "Think hard."}])
    assert bedrock.requests[-1].body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 4999}}
