"""Caps and balances as a customer meets them: lowered output caps, 402s,
and no overdraft under concurrency."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal

import httpx
import openai
import pytest

from afk.catalog import Catalog
from tests.conftest import Customer
from tests.fakes.fake_openai import FakeOpenAI, Reply

MODEL = "gpt-4o-mini"
PRICES = Catalog.load().get(MODEL).prices
MESSAGES = [{"role": "user", "content": "Write a long poem."}]


@pytest.mark.uncovered_allowed
def test_cap_lowers_max_tokens_upstream_and_bounds_the_charge(customer: Customer,
                                                              fake_openai: FakeOpenAI,
                                                              holds_bound_the_bill: list):
    with customer.http() as http:
        assert http.put(f"/v1/account/caps/{MODEL}", json={"usd": "0.001"}).status_code == 200
        listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert listed[MODEL]["pricing"]["per_call_cap"] == "0.001"

    # The upstream reports more than the caller might be charged: the cap still holds.
    fake_openai.push(Reply(prompt_tokens=12, completion_tokens=5000))
    raw = customer.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, max_completion_tokens=10_000)

    sent = fake_openai.requests[-1].body["max_completion_tokens"]
    assert sent < 10_000
    assert raw.headers["x-afk-max-tokens"] == str(sent)
    # The largest output the cap affords, given the gateway's prompt estimate.
    assert sent * PRICES.output / 1_000_000 <= Decimal("0.001")
    assert (sent + 1) * PRICES.output / 1_000_000 > Decimal("0.001") - Decimal("0.0001")
    assert Decimal(raw.headers["x-afk-cost"]) <= Decimal("0.001")
    # No real provider bills output above the cap it was sent; this fake did, and the
    # shortfall is the operator's alarm (UncoveredNanoUSD), never the customer's bill.
    assert [(model, uncovered > 0) for model, _, uncovered in holds_bound_the_bill] == [
        (MODEL, True)]
    customer.assert_books_balance()

    with customer.http() as http:
        assert http.delete(f"/v1/account/caps/{MODEL}").status_code == 200
        assert http.get(f"/v1/models/{MODEL}").json()["pricing"]["per_call_cap"] is None
    customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES)
    assert fake_openai.requests[-1].body["max_completion_tokens"] == 16384


def test_cap_too_small_for_the_prompt_is_402(customer: Customer, fake_openai: FakeOpenAI):
    with customer.http() as http:
        http.put(f"/v1/account/caps/{MODEL}", json={"usd": "0.000001"}).raise_for_status()
    with pytest.raises(openai.APIStatusError) as caught:
        customer.openai().chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 402
    assert "cap" in caught.value.message
    assert fake_openai.requests == []
    assert customer.charges() == []


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "1e-20", 0.05, None, "NaN"])
def test_invalid_caps_are_refused(customer: Customer, bad):
    with customer.http() as http:
        response = http.put(f"/v1/account/caps/{MODEL}", json={"usd": bad})
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "usd"
        assert http.get("/v1/account").json()["caps"] == {}


def test_cap_on_unknown_model_is_404(customer: Customer):
    with customer.http() as http:
        response = http.put("/v1/account/caps/no-such-model", json={"usd": "1"})
    assert response.status_code == 404


def test_explicit_unaffordable_max_tokens_is_402_naming_what_it_can_afford(
        make_customer, fake_openai: FakeOpenAI):
    poor = make_customer(credits="0.001")  # affords ~1,600 output tokens of gpt-4o-mini
    with pytest.raises(openai.APIStatusError) as caught:
        poor.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                              max_completion_tokens=10_000)
    assert caught.value.status_code == 402
    message = caught.value.message
    assert "can afford at most" in message
    affordable = int(message.split("can afford at most ")[1].split(" ")[0])
    assert 1_000 < affordable < 1_700
    assert fake_openai.requests == []
    assert poor.charges() == []
    assert poor.balance() == Decimal("0.001")

    # The number it names works.
    poor.openai().chat.completions.create(model=MODEL, messages=MESSAGES,
                                          max_completion_tokens=affordable)
    assert fake_openai.requests[-1].body["max_completion_tokens"] == affordable


def test_without_max_tokens_the_output_cap_is_lowered_to_the_balance(make_customer,
                                                                     fake_openai: FakeOpenAI):
    poor = make_customer(credits="0.001")
    raw = poor.openai().chat.completions.with_raw_response.create(model=MODEL,
                                                                  messages=MESSAGES)
    sent = fake_openai.requests[-1].body["max_completion_tokens"]
    assert 1_000 < sent < 16384
    assert raw.headers["x-afk-max-tokens"] == str(sent)
    poor.assert_books_balance()


def test_balance_that_cannot_cover_the_prompt_is_402(make_customer, fake_openai: FakeOpenAI):
    broke = make_customer(credits="0.000001")
    with pytest.raises(openai.APIStatusError) as caught:
        broke.openai().chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 402
    assert fake_openai.requests == []


def test_concurrent_requests_never_overdraw(make_customer, fake_openai: FakeOpenAI):
    # Each call holds ~$0.0001 (max_completion_tokens=150); the account affords about 10.
    account = make_customer(credits="0.001")
    for _ in range(60):
        fake_openai.push(Reply(prompt_tokens=12, completion_tokens=150))

    def call(i: int) -> int:
        body = {"model": MODEL, "messages": MESSAGES, "max_completion_tokens": 150,
                "stream": i % 2 == 0}
        with httpx.Client(timeout=30) as client:
            response = client.post(f"{account.url}/v1/chat/completions", json=body,
                                   headers={"authorization": f"Bearer {account.key}"})
            response.read()
            return response.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(call, range(50)))

    ok = statuses.count(200)
    assert set(statuses) <= {200, 402}
    assert 5 <= ok <= 15, statuses
    charges = account.charges()
    assert len(charges) == ok  # one ledger entry per success, none per refusal
    assert account.in_flight() == 0
    account.assert_books_balance()
