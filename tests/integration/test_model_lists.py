"""Model lists in each dialect's own shape, through each official SDK, with the
catalog's prices and the caller's per-call caps on every model (issue 13.3)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import anthropic
import httpx
import pytest

from afk.catalog import Catalog
from tests.conftest import Customer

CATALOG = Catalog.load()
CAPPED = "claude-haiku-4-5"


def _cap(customer: Customer, usd: str) -> None:
    with customer.http() as http:
        http.put(f"/v1/account/caps/{CAPPED}", json={"usd": usd}).raise_for_status()


def _prices_match(pricing: dict, model_id: str) -> None:
    prices = CATALOG.get(model_id).prices
    assert Decimal(pricing["input_per_million"]) == prices.input
    assert Decimal(pricing["output_per_million"]) == prices.output


def test_openai_sdk_lists_every_model_with_prices_and_caps(customer: Customer):
    _cap(customer, "0.05")
    models = {m.id: m for m in customer.openai().models.list()}
    assert {"gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"} <= set(models)
    for model_id, model in models.items():
        _prices_match(model.pricing, model_id)
    assert Decimal(models[CAPPED].pricing["per_call_cap"]) == Decimal("0.05")
    assert models["gpt-4o-mini"].pricing["per_call_cap"] is None
    assert customer.openai().models.retrieve(CAPPED).pricing["per_call_cap"] == "0.05"


def test_anthropic_sdk_lists_and_pages_models_in_its_own_shape(customer: Customer):
    _cap(customer, "0.25")
    client = customer.anthropic()
    everything = [m.id for m in customer.openai().models.list()]

    first = client.models.list(limit=2)
    assert [m.id for m in first.data] == everything[:2]
    assert (first.has_more, first.first_id, first.last_id) == (True, everything[0],
                                                                everything[1])
    paged = list(client.models.list(limit=2))  # the SDK follows after_id to the end
    assert [m.id for m in paged] == everything
    for info in paged:
        assert info.type == "model" and info.display_name
        assert isinstance(info.created_at, datetime) and info.lifecycle == "active"
        assert info.max_tokens == CATALOG.get(info.id).max_output_tokens
        _prices_match(info.pricing, info.id)
    before = client.models.list(before_id=everything[3], limit=2)
    assert [m.id for m in before.data] == everything[1:3] and before.has_more

    model = client.models.retrieve(CAPPED)
    assert (model.id, model.type, model.pricing["per_call_cap"]) == (CAPPED, "model", "0.25")
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("no-such-model")
    with pytest.raises(anthropic.BadRequestError):
        client.models.list(limit=0)


def test_anthropic_shape_follows_the_anthropic_headers(customer: Customer):
    """curl as Anthropic's docs write it (x-api-key, anthropic-version) gets
    Anthropic's shape; a bearer key alone gets OpenAI's."""
    url = f"{customer.url}/v1/models"
    anthropic_style = httpx.get(url, headers={"x-api-key": customer.key,
                                              "anthropic-version": "2023-06-01"}).json()
    assert anthropic_style["data"][0]["type"] == "model" and "has_more" in anthropic_style
    openai_style = httpx.get(url, headers={"authorization": f"Bearer {customer.key}"}).json()
    assert openai_style["object"] == "list" and openai_style["data"][0]["object"] == "model"


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_gemini_sdk_lists_models_with_prices_and_caps(customer: Customer, version: str):
    _cap(customer, "0.125")
    client = customer.genai(version)
    names = [m.name for m in client.models.list()]
    assert {"models/gemini-2.5-flash", "models/gpt-4o-mini", f"models/{CAPPED}"} <= set(names)
    assert client.models.get(model=CAPPED).output_token_limit == \
        CATALOG.get(CAPPED).max_output_tokens
    # google-genai keeps only the fields it types; the raw body carries the pricing.
    raw = httpx.get(f"{customer.url}/{version}/models",
                    headers={"x-goog-api-key": customer.key}).json()
    for model in raw["models"]:
        _prices_match(model["pricing"], model["name"].removeprefix("models/"))
    one = httpx.get(f"{customer.url}/{version}/models/{CAPPED}",
                    params={"key": customer.key}).json()
    assert one["pricing"]["per_call_cap"] == "0.125"
