"""Providers an operator declares in the catalog: any OpenAI-compatible server and
Azure OpenAI, reached through every dialect's SDK with the key named in the
catalog, billed exactly at the catalog's price."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

from afk.catalog import Catalog, CatalogError
from afk.gateway import Gateway
from afk.http.apps import create_app
from tests.conftest import Customer, open_account
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.support.paths import ROOT
from tests.support.servers import serve

DEEPSEEK_KEY = "sk-deepseek-secret"
AZURE_KEY = "azure-secret-0123"
CATALOG = """
providers:
  deepseek: {{api: openai, base_url: "{compatible}/v1", key: DEEPSEEK_API_KEY}}
  azure-eastus:
    api: azure_openai
    endpoint: "{azure}"
    api_version: "2024-10-21"
    key: AZURE_OPENAI_API_KEY
  groq: {{api: openai, base_url: "{compatible}/v1", key: GROQ_API_KEY}}
models:
  - id: deepseek-chat
    provider: deepseek
    upstream: deepseek-chat
    prices: {{input: "0.28", cached_input: "0.028", output: "0.42"}}
    max_output_tokens: 8192
    context_window: 128000
  - id: gpt-4o-azure
    provider: azure-eastus
    upstream: my-gpt4o-deployment
    prices: {{input: "2.50", cached_input: "1.25", output: "10.00"}}
    max_output_tokens: 16384
    context_window: 128000
  - id: llama-groq
    provider: groq
    upstream: llama-3.3-70b-versatile
    prices: {{input: "0.59", cached_input: "0.59", output: "0.79"}}
    max_output_tokens: 8192
    context_window: 128000
"""


@pytest.fixture(scope="module")
def upstreams():
    compatible, azure = FakeOpenAI(), FakeOpenAI(azure_key=AZURE_KEY)
    with serve(compatible.app) as compatible_url, serve(azure.app) as azure_url:
        yield compatible, compatible_url, azure, azure_url


@pytest.fixture(scope="module")
def declared_url(upstreams, settings, store, tmp_path_factory):
    compatible, compatible_url, azure, azure_url = upstreams
    path = Path(tmp_path_factory.mktemp("catalog")) / "catalog.yaml"
    path.write_text(CATALOG.format(compatible=compatible_url, azure=azure_url))
    # GROQ_API_KEY is not set: its model is declared but not callable.
    keyed = replace(settings, named_keys={"DEEPSEEK_API_KEY": DEEPSEEK_KEY,
                                          "AZURE_OPENAI_API_KEY": AZURE_KEY})
    with serve(create_app("local", Gateway(keyed, store=store,
                                           catalog=Catalog.load(path)))) as url:
        yield url


@pytest.fixture
def fakes(upstreams):
    compatible, _, azure, _ = upstreams
    compatible.reset()
    azure.reset()
    return compatible, azure


@pytest.fixture
def buyer(store, declared_url) -> Customer:
    return open_account(store, declared_url)


def cost(catalog_prices: tuple[str, str, str], prompt: int, cached: int, output: int) -> Decimal:
    price_in, price_cached, price_out = (Decimal(p) for p in catalog_prices)
    return ((prompt - cached) * price_in + cached * price_cached + output * price_out) / 10**6


def charged(customer: Customer) -> list[tuple[str, int, int, Decimal]]:
    return [(e.model, e.input_tokens, e.output_tokens, Decimal(e.amount) / 10**12)
            for e in sorted(customer.charges(), key=lambda e: e.created_ms)]


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_an_openai_compatible_server_through_the_openai_sdk(stream, buyer, fakes):
    compatible, _ = fakes
    compatible.push(Reply(text="Bonjour from DeepSeek.", prompt_tokens=40, cached_tokens=16,
                          completion_tokens=6))
    client = buyer.openai()
    messages = [{"role": "user", "content": "Say hello"}]
    if stream:
        with client.chat.completions.stream(model="deepseek-chat", messages=messages,
                                            max_tokens=200) as s:
            for _ in s:
                pass
            text = s.get_final_completion().choices[0].message.content
    else:
        text = client.chat.completions.create(model="deepseek-chat", messages=messages,
                                              max_tokens=200).choices[0].message.content
    assert text == "Bonjour from DeepSeek."
    seen = compatible.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {DEEPSEEK_KEY}"
    assert seen.body["model"] == "deepseek-chat"
    # An OpenAI-compatible server takes the cap as `max_tokens`, never both names.
    assert seen.body["max_tokens"] == 200 and "max_completion_tokens" not in seen.body
    assert charged(buyer) == [("deepseek-chat", 40, 6,
                               cost(("0.28", "0.028", "0.42"), 40, 16, 6))]
    buyer.assert_books_balance()


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
def test_an_azure_deployment_through_the_anthropic_sdk(stream, buyer, fakes):
    _, azure = fakes
    azure.push(Reply(tool_calls=[{"id": "call_az", "name": "get_weather",
                                  "arguments": {"city": "Oslo"}}],
                     prompt_tokens=90, completion_tokens=21))
    client = anthropic.Anthropic(base_url=buyer.url, api_key=buyer.key, max_retries=0)
    kwargs = dict(model="gpt-4o-azure", max_tokens=300,
                  messages=[{"role": "user", "content": "Weather in Oslo?"}],
                  tools=[{"name": "get_weather", "input_schema": {
                      "type": "object", "properties": {"city": {"type": "string"}}}}])
    if stream:
        with client.messages.stream(**kwargs) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == [
        ("get_weather", {"city": "Oslo"})]
    assert message.stop_reason == "tool_use"
    seen = azure.requests[-1]
    assert seen.path == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == AZURE_KEY and "authorization" not in seen.headers
    assert seen.body["max_completion_tokens"] == 300 and "max_tokens" not in seen.body
    assert charged(buyer) == [("gpt-4o-azure", 90, 21,
                               cost(("2.50", "1.25", "10.00"), 90, 0, 21))]
    buyer.assert_books_balance()


def test_a_declared_provider_without_its_key_is_named_and_not_listed(buyer, fakes):
    client = buyer.openai()
    listed = {m.id: m.owned_by for m in client.models.list()}
    assert listed == {"deepseek-chat": "deepseek", "gpt-4o-azure": "azure-eastus"}
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model="llama-groq",
                                       messages=[{"role": "user", "content": "hi"}])
    assert "GROQ_API_KEY" in refused.value.message
    assert fakes[0].requests == [] and buyer.charges() == []


def test_an_azure_key_refused_upstream_is_the_gateways_fault_not_the_callers(
        buyer, fakes, upstreams):
    _, azure = fakes
    azure.azure_key = "rotated"
    try:
        with pytest.raises(openai.PermissionDeniedError) as failed:  # final (issue 12)
            buyer.openai().chat.completions.create(
                model="gpt-4o-azure", messages=[{"role": "user", "content": "hi"}])
    finally:
        azure.azure_key = AZURE_KEY
    assert "refused this gateway's key" in failed.value.message
    assert "AZURE_OPENAI_API_KEY" in failed.value.message  # the setting to check
    assert AZURE_KEY not in failed.value.message
    assert buyer.charges() == [] or all(e.amount == 0 for e in buyer.charges())
    buyer.assert_books_balance()


@pytest.mark.parametrize("entry, says", [
    ("openai: {api: openai, base_url: https://x.example/v1}", "own"),
    ("x: {api: grpc, base_url: https://x.example}", "api must be one of"),
    ("x: {api: openai, base_url: ftp://x.example}", "http(s) URL"),
    ("x: {api: openai, base_url: https://x.example, key: sk-live-123}", "name of a setting"),
    ("x: {api: azure_openai, endpoint: https://x.example, key: K_API_KEY}", "api_version"),
    ("x: {api: azure_openai, endpoint: https://x.example, api_version: '2024-10-21'}",
     "key is required"),
    ("x: {api: openai, base_url: https://x.example, api_version: '2024-10-21'}",
     "not a setting"),
])
def test_a_mistyped_declaration_fails_at_load(tmp_path, entry, says):
    path = tmp_path / "catalog.yaml"
    path.write_text(f"providers:\n  {entry}\nmodels: []\n")
    with pytest.raises(CatalogError) as failed:
        Catalog.load(path)
    assert says in str(failed.value)


def test_a_model_of_an_undeclared_provider_fails_at_load(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("models:\n  - {id: m, provider: deepseek, prices: {input: '1', "
                    "cached_input: '1', output: '1'}, max_output_tokens: 1, "
                    "context_window: 10}\n")
    with pytest.raises(CatalogError, match="declared under `providers:`"):
        Catalog.load(path)


def test_the_readmes_declaration_example_loads():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Other OpenAI-compatible servers and Azure OpenAI")[1]
    example = section.split("```yaml\n")[1].split("```")[0]
    catalog = Catalog.load_text(example, "README")
    assert {n: (e.api, e.key) for n, e in catalog.endpoints.items()} == {
        "deepseek": ("openai", "DEEPSEEK_API_KEY"), "ollama": ("openai", None),
        "azure-eastus": ("azure_openai", "AZURE_OPENAI_API_KEY")}
    assert catalog.get("gpt-4o-azure").upstream == "my-gpt4o-deployment"
