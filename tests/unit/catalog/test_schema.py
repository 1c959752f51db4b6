"""afk.catalog: the shipped catalog, and strict refusal of bad catalog files."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
import yaml

from afk.catalog import Catalog, CatalogError
from afk.money import to_pico

REQUIRED = ("gpt-4o-mini", "claude-3-5-sonnet-20241022", "gemini-2.0-flash-exp", "echo")
PRICE_TEXT = re.compile(r"^\d+(\.\d{1,6})?$")


def _shipped_yaml() -> dict:
    return yaml.safe_load(resources.files("afk").joinpath("catalog.yaml").read_text("utf-8"))


def test_shipped_catalog_loads_with_required_models() -> None:
    catalog = Catalog.load()
    ids = {m.id for m in catalog}
    assert set(REQUIRED) <= ids
    assert len(catalog) == len(_shipped_yaml()["models"])
    assert catalog.get("no-such-model") is None


def test_shipped_prices_are_strings_of_at_most_six_places() -> None:
    for entry in _shipped_yaml()["models"]:
        for name in ("input", "cached_input", "output"):
            price = entry["prices"][name]
            assert isinstance(price, str), (entry["id"], name, price)
            assert PRICE_TEXT.match(price), (entry["id"], name, price)


def test_shipped_prices_are_whole_pico_per_token() -> None:
    for model in Catalog.load():
        for name in ("input", "cached_input", "output"):
            usd = getattr(model.prices, name)
            per_token = getattr(model.prices, f"{name}_pico")
            assert per_token * 10**6 == to_pico(usd), (model.id, name)
        assert model.max_output_tokens <= model.context_window, model.id


def test_shipped_gpt_4o_mini_prices() -> None:
    prices = Catalog.load().get("gpt-4o-mini").prices
    assert (prices.input, prices.cached_input, prices.output) == (
        Decimal("0.15"), Decimal("0.075"), Decimal("0.60"))
    assert prices.input_pico == 150_000  # 0.15 USD / 1e6 tokens = 150 000 pico-USD per token


GOOD = """\
  - id: {id}
    provider: {provider}
    prices: {{input: {input}, cached_input: "0.5", output: "2"}}
    max_output_tokens: 1000
    context_window: 8000
"""


def _write(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text("models:\n" + "".join(entries), "utf-8")
    return path


def test_custom_catalog_loads(tmp_path: Path) -> None:
    catalog = Catalog.load(_write(tmp_path, GOOD.format(id="m1", provider="openai",
                                                        input='"1.25"')))
    model = catalog.get("m1")
    assert model.prices.input == Decimal("1.25")
    assert model.upstream == "m1" and model.display_name == "m1"


def refusal(tmp_path: Path, *entries: str) -> str:
    """The error an operator reads when the gateway loads this catalog."""
    path = _write(tmp_path, *entries)
    with pytest.raises(CatalogError) as refused:
        Catalog.load(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: "), message  # names the file
    return message.removeprefix(f"{path}: ")


def test_a_price_that_is_not_a_number_is_refused_naming_model_and_field(
        tmp_path: Path) -> None:
    assert refusal(tmp_path, GOOD.format(id="typo", provider="openai", input='"2.5O"')) == \
        "model 'typo': prices.input '2.5O' is not a decimal number"


def test_float_price_refused_naming_model(tmp_path: Path) -> None:
    assert refusal(tmp_path, GOOD.format(id="floaty", provider="openai", input="0.15")) == (
        "model 'floaty': prices.input must be a decimal string such as \"0.05\", "
        "not a float")


def test_seven_place_price_refused_naming_model(tmp_path: Path) -> None:
    message = refusal(tmp_path, GOOD.format(id="precise", provider="openai",
                                            input='"0.0000001"'))
    assert message.startswith("model 'precise': prices.input "), message


def test_missing_price_refused_naming_model(tmp_path: Path) -> None:
    entry = GOOD.format(id="noout", provider="openai", input='"1"').replace(', output: "2"', "")
    assert refusal(tmp_path, entry) == (
        "model 'noout': prices.output is missing (a decimal string of USD per million "
        'tokens, such as "0.15")')


def test_missing_max_output_tokens_refused_naming_model(tmp_path: Path) -> None:
    entry = GOOD.format(id="nomax", provider="openai", input='"1"').replace(
        "    max_output_tokens: 1000\n", "")
    assert refusal(tmp_path, entry) == \
        "model 'nomax': max_output_tokens is missing (a positive integer)"


def test_unknown_provider_refused_naming_model(tmp_path: Path) -> None:
    assert refusal(tmp_path, GOOD.format(id="mystery", provider="opnai", input='"1"')) == (
        "model 'mystery': unknown provider 'opnai' (did you mean openai?); one of "
        "['anthropic', 'bedrock', 'echo', 'gemini', 'openai'] (a built-in one, or one "
        "declared under `providers:`)")


def test_a_misspelt_optional_field_is_refused_not_ignored(tmp_path: Path) -> None:
    """Regression: unknown fields were ignored, so `reasonning: true` left a reasoning
    model without reasoning and `cache_writes:` billed cache writes at the input price."""
    entry = GOOD.format(id="typo", provider="openai", input='"1"')
    assert refusal(tmp_path, entry + "    reasonning: true\n") == \
        "model 'typo': unknown field 'reasonning' (did you mean reasoning?)"
    assert refusal(tmp_path, entry.replace('output: "2"', 'output: "2", cache_writes: "3"')) \
        == "model 'typo': prices: unknown field 'cache_writes' (did you mean cache_write?)"


def test_duplicate_id_refused_naming_model(tmp_path: Path) -> None:
    """Regression: Catalog.__init__ once said only "duplicate model id in catalog",
    without the id, so a long catalog's duplicate had to be hunted by hand."""
    entry = GOOD.format(id="twice", provider="openai", input='"1"')
    with pytest.raises(CatalogError, match="twice"):
        Catalog.load(_write(tmp_path, GOOD.format(id="once", provider="openai", input='"1"'),
                            entry, entry))


def test_not_a_models_list_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("models: {}\n", "utf-8")
    with pytest.raises(CatalogError, match="models"):
        Catalog.load(path)


SEARCHING = """\
  - id: {id}
    provider: anthropic
    prices: {{input: "1", cached_input: "0.5", output: "2"{fee}}}
    max_output_tokens: 1000
    context_window: 8000
{search}"""


def test_web_search_fee_and_capability_go_together(tmp_path: Path) -> None:
    search = "    web_search: {counted: search, content_tokens: 1000}\n"
    fee = ', web_search_per_1000: "10.00"'
    for bad in (SEARCHING.format(id="no-fee", fee="", search=search),
                SEARCHING.format(id="no-spec", fee=fee, search="")):
        with pytest.raises(CatalogError, match="web_search"):
            Catalog.load(_write(tmp_path, bad))
    wrong = search.replace("search,", "query,")
    with pytest.raises(CatalogError, match="counted"):
        Catalog.load(_write(tmp_path, SEARCHING.format(id="m", fee=fee, search=wrong)))
    model = Catalog.load(_write(tmp_path, SEARCHING.format(id="m", fee=fee,
                                                            search=search))).get("m")
    assert model.prices.web_search_pico == 10**10  # one search: $0.01
    assert (model.web_search.counted, model.web_search.content_tokens) == ("search", 1000)


def test_a_markup_raises_the_search_fee_too(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text('markup: {percent: "20"}\nmodels:\n' + SEARCHING.format(
        id="m", fee=', web_search_per_1000: "10.00"',
        search="    web_search: {counted: search, content_tokens: 1000}\n"), "utf-8")
    model = Catalog.load(path).get("m")
    assert model.prices.web_search_per_1000 == Decimal("12.00")
    assert model.provider_prices.web_search_per_1000 == Decimal("10.00")


def test_every_shipped_model_of_a_searching_provider_prices_search() -> None:
    for model in Catalog.load():
        if model.provider in ("openai", "anthropic", "gemini") and model.kind == "chat":
            assert model.web_search is not None, model.id
        if model.kind == "embedding":  # embedding APIs have no hosted tools
            assert model.web_search is None, model.id
        if model.provider == "echo":
            assert model.web_search is None, model.id
