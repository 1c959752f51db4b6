"""Failover between the deployments of a model: a GPT model on OpenAI then on Azure,
a Claude model on Anthropic then on Bedrock. Each failure kind before the first
byte moves the call on; the hold covers the dearest deployment (the autouse
`holds_bound_the_bill` check fails any call billed above its hold), the charge is
the serving deployment's cost at the customer's price (a 10% markup here), and the
caller and the ledger are told which deployment served."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from botocore.credentials import Credentials

from afk.catalog import Catalog
from afk.failover import Breaker
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.providers.bedrock import BedrockProvider
from afk.settings import Upstream
from tests.conftest import Customer, _served, open_account
from tests.fakes import fake_bedrock
from tests.fakes.fake_anthropic import Reply as AnthropicReply
from tests.fakes.fake_bedrock import FakeBedrock
from tests.fakes.fake_bedrock import Reply as BedrockReply
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_openai import Reply as OpenAIReply
from tests.support.servers import serve

AZURE_KEY = "azure-failover-key"
CATALOG = """
markup: {{percent: "10"}}
providers:
  azure-eastus:
    api: azure_openai
    endpoint: "{azure}"
    api_version: "2024-10-21"
    key: AZURE_OPENAI_API_KEY
  unreachable: {{api: openai, base_url: "http://127.0.0.1:9/v1"}}
models:
  - id: gpt-ha
    provider: openai
    upstream: gpt-4o-mini
    prices: {{input: "0.15", cached_input: "0.075", output: "0.60"}}
    max_output_tokens: 1000
    context_window: 128000
    fallbacks:
      - provider: azure-eastus
        upstream: my-gpt4o-mini
        prices: {{input: "0.165", cached_input: "0.083", output: "0.66"}}
  - id: gpt-far
    provider: unreachable
    upstream: gpt-4o-mini
    prices: {{input: "0.15", cached_input: "0.075", output: "0.60"}}
    max_output_tokens: 1000
    context_window: 128000
    fallbacks:
      - {{provider: azure-eastus, upstream: my-gpt4o-mini}}
  - id: claude-ha
    provider: anthropic
    upstream: claude-haiku-4-5-20251001
    prices: {{input: "1.00", cached_input: "0.10", cache_write: "1.25", output: "5.00"}}
    max_output_tokens: 1000
    context_window: 200000
    images: {{rule: pixels, max_tokens: 1700}}
    fallbacks:
      - provider: bedrock
        upstream: us.anthropic.claude-haiku-4-5-20251001-v1:0
        prices: {{input: "1.10", cached_input: "0.11", cache_write: "1.375", output: "5.50"}}
"""
AZURE_PRICE = (Decimal("0.1815"), Decimal("0.726"))  # 0.165 and 0.66, marked up 10%
BEDROCK_PRICE = (Decimal("1.21"), Decimal("6.05"))
OPENAI_PRICE = (Decimal("0.165"), Decimal("0.66"))

azure_server, azure = _served(lambda: FakeOpenAI(azure_key=AZURE_KEY), "azure")
failover_bedrock_server, failover_bedrock = _served(FakeBedrock, "failover_bedrock")


@pytest.fixture(scope="module")
def failover_gateway(settings, store, azure_server, failover_bedrock_server,
                     tmp_path_factory) -> Gateway:
    path = Path(tmp_path_factory.mktemp("failover")) / "catalog.yaml"
    path.write_text(CATALOG.format(azure=azure_server[1]))
    configured = replace(settings, bedrock=True, read_timeout=1.0, connect_timeout=1.0,
                         named_keys={"AZURE_OPENAI_API_KEY": AZURE_KEY},
                         upstreams={**settings.upstreams,
                                    "bedrock": Upstream(failover_bedrock_server[1])})
    role = Credentials(fake_bedrock.ACCESS_KEY, fake_bedrock.SECRET_KEY,
                       fake_bedrock.SESSION_TOKEN)
    return Gateway(configured, store=store, catalog=Catalog.load(path),
                   providers={"bedrock": BedrockProvider(configured, credentials=role)})


@pytest.fixture(scope="module")
def failover_url(failover_gateway):
    with serve(create_app("local", failover_gateway)) as url:
        yield url


@pytest.fixture
def buyer(store, failover_url, failover_gateway) -> Customer:
    failover_gateway.breaker = Breaker()  # every test starts with no deployment resting
    return open_account(store, failover_url, failover_gateway)


def ask(customer: Customer, model: str, *, stream: bool = False) -> tuple[str, str]:
    """(answer, x-afk-provider) through the OpenAI SDK."""
    client = customer.openai()
    messages = [{"role": "user", "content": "Hello?"}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
                model=model, messages=messages, stream=True) as response:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse()
                           if chunk.choices)
            return text, response.headers["x-afk-provider"]
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
    return raw.parse().choices[0].message.content, raw.headers["x-afk-provider"]


def assert_billed(customer: Customer, provider: str, price: tuple[Decimal, Decimal],
                  tokens: tuple[int, int]) -> None:
    (entry,) = customer.charges()
    assert (entry.model, entry.status, entry.provider) == (entry.model, "ok", provider)
    assert (entry.input_tokens, entry.output_tokens) == tokens
    assert Decimal(entry.amount) / 10**12 == (tokens[0] * price[0] + tokens[1] * price[1]) \
        / 10**6
    assert customer.in_flight() == 0  # one hold, settled once
    customer.assert_books_balance()


FAILURES = {
    "429": lambda: OpenAIReply(status=429, error_type="requests",
                                     error_code="rate_limit_exceeded"),
    "500": lambda: OpenAIReply(status=500),
    "503": lambda: OpenAIReply(status=503, error_type="service_unavailable"),
    "timeout": lambda: OpenAIReply(delay=1.5),  # past the 1 s read timeout
}


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
@pytest.mark.parametrize("kind", list(FAILURES))
def test_each_failure_before_the_first_byte_moves_the_call_to_azure(
        kind, stream, buyer, fake_openai, azure):
    fake_openai.push(FAILURES[kind]())
    # The fallback answers with every output token the hold allows: billed at Azure's
    # dearer price, the hold (at the dearest deployment) still covers it.
    azure.push(OpenAIReply(text="From Azure.", prompt_tokens=20,
                                 completion_tokens=1000))
    assert ask(buyer, "gpt-ha", stream=stream) == ("From Azure.", "azure-eastus")
    assert len(fake_openai.requests) == 1 and len(azure.requests) == 1
    assert azure.requests[0].path == "/openai/deployments/my-gpt4o-mini/chat/completions"
    assert_billed(buyer, "azure-eastus", AZURE_PRICE, (20, 1000))


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_a_deployment_that_cannot_be_reached_is_passed_over(stream, buyer, azure):
    azure.push(OpenAIReply(text="Still here.", prompt_tokens=9, completion_tokens=3))
    assert ask(buyer, "gpt-far", stream=stream) == ("Still here.", "azure-eastus")
    assert_billed(buyer, "azure-eastus", (Decimal("0.165"), Decimal("0.66")), (9, 3))


def test_the_primary_serving_bills_the_primary(buyer, fake_openai, azure):
    assert ask(buyer, "gpt-ha") == ("Hello!", "openai")
    assert azure.requests == []
    assert_billed(buyer, "openai", OPENAI_PRICE, (12, 2))


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_claude_moves_from_anthropic_to_bedrock(stream, buyer, fake_anthropic,
                                                failover_bedrock):
    fake_anthropic.push(AnthropicReply(status=529))
    failover_bedrock.push(BedrockReply(text="From Bedrock.", input_tokens=14,
                                             output_tokens=4))
    client = anthropic.Anthropic(base_url=buyer.url, api_key=buyer.key, max_retries=0)
    kwargs = dict(model="claude-ha", max_tokens=200,
                  messages=[{"role": "user", "content": "Hello?"}])
    if stream:
        with client.messages.with_streaming_response.create(**kwargs, stream=True) as raw:
            events = list(raw.parse())
            provider = raw.headers["x-afk-provider"]
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    else:
        raw = client.messages.with_raw_response.create(**kwargs)
        text, provider = raw.parse().content[0].text, raw.headers["x-afk-provider"]
    assert (text, provider) == ("From Bedrock.", "bedrock")
    assert len(fake_anthropic.requests) == 1
    assert_billed(buyer, "bedrock", BEDROCK_PRICE, (14, 4))


def test_a_request_the_provider_refuses_is_not_sent_elsewhere(buyer, fake_openai, azure):
    fake_openai.push(OpenAIReply(status=400, error_type="invalid_request_error"))
    with pytest.raises(openai.BadRequestError):
        ask(buyer, "gpt-ha")
    assert azure.requests == []
    assert all(e.amount == 0 for e in buyer.charges())
    buyer.assert_books_balance()


def test_a_deployment_that_keeps_failing_rests_then_is_tried_again(
        buyer, fake_openai, azure, failover_gateway):
    now = [1000.0]
    failover_gateway.breaker = Breaker(trip_after=3, rest_seconds=30, clock=lambda: now[0])
    for _ in range(3):
        fake_openai.push(OpenAIReply(status=500))
        assert ask(buyer, "gpt-ha")[1] == "azure-eastus"
    assert len(fake_openai.requests) == 3
    # Resting: the next calls go straight to Azure; OpenAI sees nothing.
    assert ask(buyer, "gpt-ha")[1] == "azure-eastus"
    assert len(fake_openai.requests) == 3
    now[0] += 31  # rested: tried first again, and it answers
    assert ask(buyer, "gpt-ha")[1] == "openai"
    assert len(fake_openai.requests) == 4


def test_the_hold_is_quoted_at_the_dearest_deployment(failover_gateway):
    model = failover_gateway.catalog.get("claude-ha")
    worst = model.worst_case().prices
    assert (worst.input, worst.cached_input, worst.cache_write, worst.output) == (
        Decimal("1.21"), Decimal("0.121"), Decimal("1.5125"), Decimal("6.05"))
    assert [d.provider for d in model.deployments] == ["anthropic", "bedrock"]


def test_a_deployment_that_cannot_take_the_request_is_left_out_of_it(buyer, fake_anthropic,
                                                                     failover_bedrock):
    """A JSON response format: Anthropic takes it, Converse cannot (400 on Bedrock
    alone). The call goes to Anthropic; when Anthropic fails, there is nowhere else."""
    fake_anthropic.push(AnthropicReply(text='{"ok": true}', input_tokens=12,
                                       output_tokens=5))
    client = buyer.openai()
    kwargs = dict(model="claude-ha", response_format={"type": "json_object"},
                  messages=[{"role": "user", "content": "JSON please"}])
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    assert raw.headers["x-afk-provider"] == "anthropic"
    assert raw.parse().choices[0].message.content == '{"ok": true}'
    fake_anthropic.push(AnthropicReply(status=529))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(**kwargs)
    assert failover_bedrock.requests == []
    buyer.assert_books_balance()
