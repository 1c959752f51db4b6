"""Per-key spend limits (issue 15): exact under concurrency, on DynamoDB's real
semantics (transaction conflicts, per-partition throughput), without a per-call
write on any shared item.

Two gateways (two environments, two wallets) share one table behind the
semantics layer; 100 concurrent calls of one key with a spend limit race for
it. The key never spends past its limit; what it could not afford is a 402
naming the limit; once the leases close, the key's budget items hold exactly
its charges.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest

from afk.billing.wallet import Wallet
from afk.gateway import Gateway
from afk.http.apps import create_app
from afk.limits import Limits
from afk.local.dynamodb import EmbeddedDynamoDB
from afk.money import from_pico, to_pico
from afk.settings import Settings
from afk.store import Dynamo, Hold, Lease, Settlement, Store, create_table
from afk.store.budgets import Budget, budget_key
from afk.sweeper import sweep
from tests.fakes.dynamodb_semantics import DynamoDBSemantics
from tests.support.servers import serve

CALLS = 100
LIMIT = Decimal("0.0006")  # a few dozen echo calls of max 8 tokens
USD = 10**12


@pytest.fixture(scope="module")
def semantics_store() -> Iterator[tuple[Store, Settings]]:
    table = f"afk-budgets-{secrets.token_hex(3)}"
    with EmbeddedDynamoDB() as db, DynamoDBSemantics(db.endpoint) as proxy:
        create_table(Dynamo(table, endpoint_url=proxy.endpoint).client, table)
        settings = dataclasses.replace(Settings.from_env({}), table=table,
                                       dynamodb_endpoint=proxy.endpoint)
        yield Store(Dynamo(table, endpoint_url=proxy.endpoint)), settings


def _budget_used(store: Store, key_id: str, period: str) -> int:
    item = store.dynamo.client.get_item(TableName=store.dynamo.table,
                                        Key=budget_key(key_id, period),
                                        ConsistentRead=True).get("Item", {})
    return int(item.get("used", {}).get("N", "0"))


async def _call(client: httpx.AsyncClient, url: str, key: str, i: int) -> httpx.Response:
    return await client.post(f"{url}/v1/chat/completions",
                             headers={"authorization": f"Bearer {key}"},
                             json={"model": "echo", "max_tokens": 8, "stream": i % 2 == 0,
                                   "messages": [{"role": "user", "content": f"call {i}"}]})


async def _race(urls: list[str], key: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CALLS * 2, max_keepalive_connections=CALLS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(*(_call(client, urls[i % len(urls)], key, i)
                                      for i in range(CALLS)))


@pytest.mark.parametrize("limit", ["spend_per_day", "spend_per_month"])
def test_a_key_never_spends_past_its_limit_under_100_concurrent_calls(
        semantics_store: tuple[Store, Settings], limit: str):
    store, settings = semantics_store
    account = store.accounts.create("budgeted", credits=10 * USD)
    owner_key, owner = store.keys.create(account.id, "owner", scope="manage")
    key, record = store.keys.create(account.id, "ci", scope="inference")
    field = {"spend_per_day": "per_day", "spend_per_month": "per_month"}[limit]
    store.keys.set_limits(record.key_id, Limits(**{field: to_pico(LIMIT)}), owner="operator")
    gateways = [Gateway(settings, store=store) for _ in range(2)]
    with serve(create_app("local", gateways[0])) as first, \
            serve(create_app("local", gateways[1])) as second:
        responses = asyncio.run(_race([first, second], key))
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        # Streams that started were billed before their last event: all complete.
        assert all("[DONE]" in r.text for r in ok if r.text.startswith("data:"))
        listed = httpx.get(f"{first}/v1/account/keys",
                           headers={"authorization": f"Bearer {owner_key}"}).json()["data"]
    for gateway in gateways:
        gateway.wallet.release(account.id)

    charges = [e for e in store.ledger.all_entries(account.id) if e.type == "charge"]
    spent = sum(e.amount for e in charges)
    assert 0 < len(ok) < CALLS, "the limit should let some calls through and stop others"
    assert spent <= to_pico(LIMIT), f"spent {from_pico(spent)} past the limit {LIMIT}"
    assert {e.key_id for e in charges} == {record.key_id}
    assert len(charges) == len(ok)
    # Each refusal is the dialect's 402, naming the key's limit.
    for response in refused:
        assert response.status_code == 402, response.text
        error = response.json()["error"]
        assert error["code"] == "key_budget_exceeded"
        assert f"${LIMIT}" in error["message"]
        assert ("per day" if field == "per_day" else "per month") in error["message"]
    # The Keys tab's figures are the ledger's.
    shown = {k["id"]: k for k in listed}[record.key_id]
    assert Decimal(shown["spend"]["this_month"]) == from_pico(spent)
    assert shown["limits"][limit] == str(LIMIT) and shown["operator_limits"][limit]
    assert {k["id"]: k for k in listed}[owner.key_id]["spend"]["today"] == "0.00"
    # Folded in: the budget item counts exactly the charges (unused lease money returned).
    sweep(store.leases, now_ms=2**42, account_id=account.id)
    budget = Budget.of(record.key_id, to_pico(LIMIT) if field == "per_day" else None,
                       to_pico(LIMIT) if field == "per_month" else None,
                       charges[0].created_ms)
    (period,) = budget.period_ids
    assert _budget_used(store, record.key_id, period) == spent
    statement = store.leases.statement(account.id)
    assert statement.leases == [] and statement.account.balance == 10 * USD - spent


def test_a_key_without_a_spend_limit_shares_the_account_lease(customer):
    """Only keys with a spend limit pay for leases of their own."""
    second, record = customer.store.keys.create(customer.account_id, "plain",
                                                scope="inference")
    for key in (customer.key, second):
        openai.OpenAI(base_url=f"{customer.url}/v1", api_key=key, max_retries=0) \
            .chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    assert len({e.request_id for e in customer.charges()}) == 2
    assert len(customer.statement().leases) == 1


def test_the_limit_is_named_in_each_dialect(customer):
    import anthropic
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

    with customer.http() as http:
        ci = http.post("/v1/account/keys", json={"name": "tiny", "spend_per_day": "0.000001"})
    key = ci.json()["key"]
    with pytest.raises(openai.APIStatusError) as caught:
        openai.OpenAI(base_url=f"{customer.url}/v1", api_key=key, max_retries=0) \
            .chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 402 and "$0.000001 per day" in caught.value.message
    with pytest.raises(anthropic.APIStatusError) as refused:
        anthropic.Anthropic(base_url=customer.url, api_key=key, max_retries=0).messages.create(
            model="echo", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert refused.value.status_code == 402 and "spend limit" in refused.value.message
    gemini = genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=customer.url, retry_options=types.HttpRetryOptions(attempts=1)))
    with pytest.raises(genai_errors.ClientError) as google:
        gemini.models.generate_content(model="echo", contents="x")
    assert google.value.code == 402 and "spend limit" in str(google.value)
    assert customer.charges() == []


def test_a_budgeted_lease_ends_with_its_day(store: Store):
    """The period rule: a call counts toward the UTC day it was reserved in. A key's
    own lease expires at midnight; the first call after it draws a lease reserved
    against the new day."""
    account = store.accounts.create("midnight", credits=USD)
    before_midnight = 1_767_225_590.0  # 2025-12-31T23:59:50Z
    clock = [before_midnight]
    wallet = Wallet(store.leases, owner="env-midnight", clock=lambda: clock[0])

    def call(now: float) -> Lease:
        clock[0] = now
        budget = Budget.of("key_mid", 10**9, None, int(now * 1000))
        hold = Hold(id=f"req_{secrets.token_hex(6)}", account_id=account.id, amount=10**6,
                    model="echo", endpoint="/v1/chat/completions", key_id="key_mid",
                    created_ms=int(now * 1000), budget=budget)
        lease = wallet.reserve_local(hold) or wallet.reserve(hold)
        assert isinstance(lease, Lease)
        wallet.settle(dataclasses.replace(hold, lease_id=lease.id), Settlement(charge=10**5))
        return lease

    first = call(before_midnight)
    assert first.expires_ms == 1_767_225_600_000 and first.budget_periods == ("DAY#2025-12-31",)
    after = call(before_midnight + 15)
    assert after.id != first.id and after.budget_periods == ("DAY#2026-01-01",)
    wallet.background.drain()
    wallet.release(account.id)
    sweep(store.leases, now_ms=2**42, account_id=account.id)
    assert _budget_used(store, "key_mid", "DAY#2025-12-31") == 10**5
    assert _budget_used(store, "key_mid", "DAY#2026-01-01") == 10**5
