"""Customer price vs provider cost (issue 14, part 2): the catalog's markups and
explicit prices, and an account's negotiated markup, reach the model list, the
hold, the charge and the ledger; the provider's cost is recorded next to the
charge and never shown to the customer."""

from __future__ import annotations

import secrets
from decimal import Decimal

import anthropic
import pytest

from afk.catalog import Catalog, CatalogError
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.money import from_pico, parse_usd, to_pico
from afk.settings import Settings
from afk.store import Store
from tests.conftest import Customer
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_anthropic import Reply as AnthropicReply
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.support.servers import serve

BUILT_IN = Catalog.load()
MARKUPS = """
markup:
  percent: "10"
  providers: {openai: "20"}
  models: {gpt-4o-mini: "50"}
"""
EXPLICIT = """
    customer_prices:
      input: "1.30"
      cached_input: "0.13"
      cache_write: "1.60"
      cache_write_1h: "2.60"
      output: "6.50"
"""


def _catalog_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The built-in catalog, with markups and an explicit price for Claude Haiku."""
    text = BUILT_IN_TEXT.replace("models:\n", MARKUPS + "models:\n", 1)
    anchor = "    display_name: Claude Haiku 4.5\n"
    text = text.replace(anchor, anchor + EXPLICIT.lstrip("\n"), 1)
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(text)
    return str(path)


BUILT_IN_TEXT = __import__("importlib.resources").resources.files("afk").joinpath(
    "catalog.yaml").read_text("utf-8")


@pytest.fixture(scope="module")
def priced(settings: Settings, store: Store, tmp_path_factory: pytest.TempPathFactory):
    catalog = Catalog.load(_catalog_file(tmp_path_factory))
    gateway = Gateway(settings, store=store, catalog=catalog)
    with serve(create_app("local", gateway)) as url:
        yield gateway, url


@pytest.fixture
def buyer(priced, store: Store) -> Customer:
    gateway, url = priced
    account = store.accounts.create(f"buyer-{secrets.token_hex(3)}",
                                    credits=to_pico(parse_usd("10")))
    key, record = store.keys.create(account.id, "test")
    return Customer(account.id, key, record.key_id, url, store, gateway)


def _listed(customer: Customer) -> dict[str, dict]:
    with customer.http() as http:
        return {m["id"]: m for m in http.get("/v1/models").json()["data"]}


def test_model_list_shows_the_customers_price_never_the_cost(buyer: Customer) -> None:
    listed = _listed(buyer)
    cost = {m.id: m.prices for m in BUILT_IN}
    # per model (50%), per provider (openai 20%), everyone else 10%, explicit price
    expected = {"gpt-4o-mini": Decimal("1.5"), "gpt-4.1": Decimal("1.2"),
                "gemini-2.5-flash": Decimal("1.1"), "claude-sonnet-4-5": Decimal("1.1")}
    for model, factor in expected.items():
        pricing = listed[model]["pricing"]
        assert Decimal(pricing["input_per_million"]) == cost[model].input * factor
        assert Decimal(pricing["output_per_million"]) == cost[model].output * factor
        assert Decimal(pricing["cached_input_per_million"]) == cost[model].cached_input * factor
    haiku = listed["claude-haiku-4-5"]["pricing"]
    assert (haiku["input_per_million"], haiku["output_per_million"]) == ("1.30", "6.50")
    assert "cost" not in str(listed).lower().replace("per_call_cap", "")
    with buyer.http() as http:
        one = http.get("/v1/models/gpt-4.1").json()
    assert Decimal(one["pricing"]["input_per_million"]) == Decimal("2.40")


def test_charge_at_the_customers_price_and_the_ledger_keeps_the_cost(
        buyer: Customer, fake_openai: FakeOpenAI) -> None:
    fake_openai.push(Reply(prompt_tokens=1000, completion_tokens=500, cached_tokens=200))
    raw = buyer.openai().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    cost = BUILT_IN.get("gpt-4o-mini").prices
    provider = (800 * cost.input + 200 * cost.cached_input + 500 * cost.output) / 10**6
    price = (800 * cost.input * Decimal("1.5") + 200 * cost.cached_input * Decimal("1.5")
             + 500 * cost.output * Decimal("1.5")) / 10**6
    assert Decimal(raw.headers["x-afk-cost"]) == price
    [entry] = buyer.charges()
    assert (from_pico(entry.amount), from_pico(entry.provider_cost)) == (price, provider)
    with buyer.http() as http:
        usage = http.get("/v1/account/usage").json()["data"]
    assert usage[0]["cost"] == raw.headers["x-afk-cost"]
    assert "provider_cost" not in usage[0]
    buyer.assert_books_balance()


def test_explicit_price_bills_cache_writes_at_the_customers_price(
        buyer: Customer, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.push(AnthropicReply(input_tokens=100, output_tokens=10,
                                       cache_creation_input_tokens=300))
    client = anthropic.Anthropic(base_url=buyer.url, api_key=buyer.key, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50,
        messages=[{"role": "user", "content": "long enough to bill 400 tokens " * 60}])
    cost = BUILT_IN.get("claude-haiku-4-5").prices
    price = (100 * Decimal("1.30") + 300 * Decimal("1.60") + 10 * Decimal("6.50")) / 10**6
    provider = (100 * cost.input + 300 * cost.cache_write + 10 * cost.output) / 10**6
    assert Decimal(raw.headers["x-afk-cost"]) == price
    [entry] = buyer.charges()
    assert from_pico(entry.provider_cost) == provider


def test_an_accounts_negotiated_markup_replaces_the_catalog_price(
        buyer: Customer, fake_openai: FakeOpenAI, store: Store) -> None:
    store.accounts.set_markup(buyer.account_id, "*", Decimal("5"))
    store.accounts.set_markup(buyer.account_id, "gpt-4.1", Decimal("-10"))
    buyer.gateway.forget_account(buyer.account_id)
    listed = _listed(buyer)
    cost = {m.id: m.prices for m in BUILT_IN}
    assert Decimal(listed["gpt-4.1"]["pricing"]["input_per_million"]) == Decimal("1.80")
    assert Decimal(listed["claude-haiku-4-5"]["pricing"]["input_per_million"]) == (
        cost["claude-haiku-4-5"].input * Decimal("1.05"))

    fake_openai.push(Reply(prompt_tokens=1000, completion_tokens=100))
    raw = buyer.openai().chat.completions.with_raw_response.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    assert Decimal(raw.headers["x-afk-cost"]) == (1000 * Decimal("1.80")
                                                  + 100 * Decimal("7.20")) / 10**6
    [entry] = buyer.charges()
    assert from_pico(entry.provider_cost) == (1000 * cost["gpt-4.1"].input
                                              + 100 * cost["gpt-4.1"].output) / 10**6
    assert entry.amount < entry.provider_cost  # sold below cost, as negotiated

    store.accounts.clear_markup(buyer.account_id, "gpt-4.1")
    store.accounts.clear_markup(buyer.account_id, "*")
    buyer.gateway.forget_account(buyer.account_id)
    assert Decimal(_listed(buyer)["gpt-4.1"]["pricing"]["input_per_million"]) == Decimal("2.40")


@pytest.mark.parametrize("markup, problem", [
    ('markup: {percent: "-100"}', "above -100"),
    ('markup: {percent: 0.5}', "decimal string"),
    ('markup: {models: {no-such-model: "5"}}', "not a catalog model"),
    ('markup: {providers: {acme: "5"}}', "unknown provider"),
    ('markup: {percent: "5", extra: 1}', "mapping of percent"),
])
def test_bad_markups_fail_at_load(tmp_path, markup: str, problem: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(BUILT_IN_TEXT.replace("models:\n", markup + "\nmodels:\n", 1))
    with pytest.raises(CatalogError, match=problem):
        Catalog.load(path)


def test_an_explicit_price_must_price_what_the_provider_bills(tmp_path) -> None:
    path = tmp_path / "catalog.yaml"
    anchor = "    display_name: Claude Haiku 4.5\n"
    path.write_text(BUILT_IN_TEXT.replace(anchor, anchor + """    customer_prices:
      input: "1.30"
      cached_input: "0.13"
      output: "6.50"
""", 1))
    with pytest.raises(CatalogError, match="cache_write"):
        Catalog.load(path)


def test_markups_round_up_to_a_whole_pico_usd_per_token(tmp_path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(BUILT_IN_TEXT.replace("models:\n", 'markup: {percent: "33.3333"}\n'
                                          "models:\n", 1))
    model = Catalog.load(path).get("gpt-5")  # 0.125 cached: x1.333333 = 0.16666662...
    assert model.prices.cached_input == Decimal("0.166667")
    assert model.provider_prices.cached_input == Decimal("0.125")
