"""Usage totals at any volume (issue 14, part 4): 5,000 ledger entries written by
the money protocol itself (three environments over three days), counted by the
aggregator from the table's stream with batches retried and replayed as Lambda
does, then summarized exactly, paged completely and exported completely."""

from __future__ import annotations

import csv
import io
import random
import secrets
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from afk import admin, cli
from afk.aggregator import StreamPoller, aggregate, local_poller
from afk.money import format_usd, from_pico
from afk.store import Hold, Lease, Settlement, Store
from afk.store.leases import charge_record
from afk.store.ledger import charge_item
from afk.store.rollups import Rollups
from tests.conftest import Customer

pytestmark = pytest.mark.timeout(900)  # 5,000 calls through moto, then read thrice

CALLS = 5_000
MODELS = ("gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash")
DAY_MS = 86_400_000


class Flaky(Rollups):
    """Fails every third batch after counting part of it: Lambda retries the whole
    batch, as it does when a function errors."""

    def __init__(self, inner: Rollups) -> None:
        self.inner = inner
        self.calls = 0

    def count(self, entries):  # type: ignore[override]
        self.calls += 1
        if self.calls % 3 == 0:
            self.inner.count(entries[: len(entries) // 2])
            raise RuntimeError("function crashed mid-batch")
        return self.inner.count(entries)


@pytest.fixture(scope="module")
def busy(make_customer_module) -> dict:
    """One account, two keys, 5,000 charges over three days (three environments'
    leases) and what they should sum to. The entries are the money protocol's own
    (`charge_item` under a lease, as `Leases.record_charge` stores them), written
    25 at a time: moto takes ~10 ms a call, and this test is about what follows."""
    customer: Customer = make_customer_module("1000")
    store = customer.store
    _, second = store.keys.create(customer.account_id, "second")
    keys = (customer.key_id, second.key_id)
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    days = [(now - timedelta(days=d)) for d in (2, 1, 0)]
    leases = [Lease(id=f"lse_{secrets.token_hex(10)}", account_id=customer.account_id,
                    granted=0, expires_ms=0, reconcile_ms=0, version=1) for _ in days]
    rng = random.Random(14)
    expected: dict[str, dict] = defaultdict(lambda: defaultdict(Counter))
    ids, items = set(), []
    for i in range(CALLS):
        env = rng.randrange(3)
        model, key_id = rng.choice(MODELS), rng.choice(keys)
        usage = {"input_tokens": rng.randrange(1, 5000), "output_tokens": rng.randrange(0, 900),
                 "cached_input_tokens": rng.randrange(0, 50), "reasoning_tokens": rng.randrange(0, 9)}
        charge, cost = rng.randrange(1, 10**9), rng.randrange(1, 10**9)
        hold = Hold(id=f"req_{secrets.token_hex(8)}", account_id=customer.account_id,
                    amount=10**9, model=model, endpoint="/v1/chat/completions", key_id=key_id,
                    created_ms=0)
        created_ms = int(days[env].timestamp() * 1000) + i
        items.append(charge_record(leases[env], charge_item(
            hold, Settlement(charge=charge, provider_cost=cost, **usage), created_ms)))
        ids.add(hold.id)
        day = days[env].date().isoformat()
        for group, name in (("day", day), ("model", model), ("key", key_id)):
            expected[group][name].update(requests=1, cost=charge, **usage)
    db = store.dynamo
    for start in range(0, CALLS, 25):
        db.client.batch_write_item(RequestItems={db.table: [
            {"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
    return {"customer": customer, "expected": expected, "ids": ids, "days": days,
            "since": days[0].date().isoformat(), "until": days[2].date().isoformat()}


@pytest.fixture(scope="module")
def make_customer_module(store: Store, gateway, gateway_url: str):
    from afk.money import parse_usd, to_pico

    def make(credits: str) -> Customer:
        account = store.accounts.create(f"busy-{secrets.token_hex(3)}",
                                        credits=to_pico(parse_usd(credits)))
        key, record = store.keys.create(account.id, "test")
        return Customer(account.id, key, record.key_id, gateway_url, store, gateway)

    return make


@pytest.fixture(scope="module")
def counted(busy: dict, store: Store, dynamodb_endpoint: str,
            request: pytest.FixtureRequest) -> dict:
    """The stream read three times: by a poller whose batches fail and are retried,
    by a fresh one replaying everything from the start, and by the session's own
    (which may have been reading all along, racing the others)."""
    flaky = local_poller(store, dynamodb_endpoint, "us-east-1")
    flaky._rollups = Flaky(store.rollups)
    flaky._batch_size = 700
    for _ in range(1000):
        try:
            flaky.drain()
            break
        except RuntimeError:
            continue
    replay = local_poller(store, dynamodb_endpoint, "us-east-1")
    assert replay.drain() == 0  # every entry was counted already: a replay adds nothing
    aggregator: StreamPoller = request.getfixturevalue("aggregator")
    aggregator.drain()
    return busy


def _summary(customer: Customer, **params) -> dict:
    with customer.http() as http:
        response = http.get("/v1/account/usage/summary", params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("group", ["day", "model", "key"])
def test_summary_is_exact_for_5000_entries(counted: dict, group: str) -> None:
    customer = counted["customer"]
    summary = _summary(customer, since=counted["since"], until=counted["until"], group_by=group)
    got = {row[group]: row for row in summary["data"]}
    expected = counted["expected"][group]
    assert set(got) == set(expected)
    for name, want in expected.items():
        row = got[name]
        assert row["requests"] == want["requests"]
        assert Decimal(row["cost"]) == from_pico(want["cost"])
        for field in ("input_tokens", "output_tokens", "cached_input_tokens",
                      "reasoning_tokens"):
            assert row[field] == want[field]
    total = summary["total"]
    assert total["requests"] == CALLS
    assert Decimal(total["cost"]) == from_pico(sum(w["cost"] for w in expected.values()))
    assert Decimal(total["credits"]) == Decimal("1000")  # the opening credit
    assert "provider_cost" not in str(summary)


def test_summary_counts_days_not_latest_entries(counted: dict) -> None:
    """The bug of issue 14: totals from the latest 1,000 entries. One day alone."""
    customer = counted["customer"]
    day = counted["days"][1].date().isoformat()
    summary = _summary(customer, since=day, until=day)
    assert [row["day"] for row in summary["data"]] == [day]
    assert summary["total"]["requests"] == counted["expected"]["day"][day]["requests"] > 1000


def test_usage_pages_with_a_cursor_through_every_entry(counted: dict) -> None:
    customer = counted["customer"]
    seen, cursor, pages = [], None, 0
    with httpx.Client(base_url=customer.url, timeout=300,
                      headers={"authorization": f"Bearer {customer.key}"}) as http:
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/account/usage", params=params).json()
            seen += page["data"]
            pages += 1
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            cursor = page["next_cursor"]
    assert pages == 6  # 5,000 charges and the opening credit, 1,000 a page
    charges = [e["request_id"] for e in seen if e["type"] == "charge"]
    assert len(charges) == len(set(charges)) == CALLS and set(charges) == counted["ids"]
    order = [(e["created"], e["id"]) for e in seen]
    assert order == sorted(order, reverse=True)


def test_csv_export_has_every_entry_of_the_range(counted: dict) -> None:
    customer = counted["customer"]
    with httpx.Client(base_url=customer.url, timeout=300,
                      headers={"authorization": f"Bearer {customer.key}"}) as http, http.stream(
            "GET", "/v1/account/usage/export",
            params={"since": counted["since"], "until": counted["until"]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        text = "".join(response.iter_text())
    rows = list(csv.DictReader(io.StringIO(text)))
    charges = [r for r in rows if r["type"] == "charge"]
    assert {r["request_id"] for r in charges} == counted["ids"] and len(charges) == CALLS
    total = sum(Decimal(r["cost"]) for r in charges)
    assert total == from_pico(sum(w["cost"] for w in counted["expected"]["day"].values()))
    with httpx.Client(base_url=customer.url, timeout=300,
                      headers={"authorization": f"Bearer {customer.key}"}) as http:
        day = counted["days"][0].date().isoformat()
        one = http.get("/v1/account/usage/export", params={"since": day, "until": day,
                                                           "type": "charge"}).text
    assert len(list(csv.DictReader(io.StringIO(one)))) == counted["expected"]["day"][day][
        "requests"]


def test_operator_report_gives_revenue_cost_and_margin_exactly(
        counted: dict, store: Store, dynamodb_endpoint: str, monkeypatch, capsys) -> None:
    import json

    monkeypatch.setenv("AFK_TABLE", store.dynamo.table)
    monkeypatch.setenv("AFK_DYNAMODB_ENDPOINT", dynamodb_endpoint)
    monkeypatch.setattr(admin, "_store", lambda where: store)
    customer = counted["customer"]
    assert cli.main(["admin", "report", "--by", "account", "--since", counted["since"],
                     "--until", counted["until"], "--json"]) == 0
    lines = {line["account"]: line for line in json.loads(capsys.readouterr().out)}
    mine = lines[customer.account_id]
    entries = [e for e in customer.charges()]
    revenue = sum(e.amount for e in entries)
    cost = sum(e.provider_cost for e in entries)
    assert (mine["requests"], mine["revenue"], mine["provider_cost"], mine["margin"]) == (
        CALLS, format_usd(revenue), format_usd(cost), format_usd(revenue - cost))
    assert cli.main(["admin", "report", "--by", "model", "--since", counted["since"],
                     "--until", counted["until"], "--json"]) == 0
    by_model = json.loads(capsys.readouterr().out)
    assert by_model[-1]["model"] == "total"
    assert sum(line["requests"] for line in by_model[:-1]) == by_model[-1]["requests"]


@pytest.mark.parametrize("params, param", [
    ({"group_by": "hour"}, "group_by"), ({"since": "yesterday"}, "since"),
    ({"since": "2026-12-02", "until": "2026-12-01"}, "since"),
    ({"since": "2024-01-01", "until": "2026-01-01"}, "since"),
])
def test_bad_summary_queries_are_400(customer: Customer, params: dict, param: str) -> None:
    with customer.http() as http:
        response = http.get("/v1/account/usage/summary", params=params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_bad_cursor_is_400(customer: Customer) -> None:
    with customer.http() as http:
        response = http.get("/v1/account/usage", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "cursor"


def test_aggregate_ignores_everything_but_new_ledger_entries(store: Store) -> None:
    records = [{"eventName": "MODIFY", "dynamodb": {"NewImage": {}}},
               {"eventName": "INSERT", "dynamodb": {"NewImage": {
                   "PK": {"S": "ACCOUNT#a"}, "SK": {"S": "KEY#k"}}}},
               {"eventName": "REMOVE", "dynamodb": {}}]
    assert aggregate(store.rollups, records) == 0
