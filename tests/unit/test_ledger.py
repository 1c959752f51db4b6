"""afk.store (ledger, accounts, keys) and afk.sweeper against a real embedded
DynamoDB: reserve / settle exactly once, and the books always balance."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afk.errors import NotFound
from afk.store import Dynamo, Hold, Settlement, Store, create_table
from afk.store.keys import KEY_PREFIX, hash_key
from afk.sweeper import sweep

USD = 10**12


def _new_store(endpoint: str) -> Store:
    table = f"afk-unit-{secrets.token_hex(4)}"
    dynamo = Dynamo(table, endpoint_url=endpoint)
    create_table(dynamo.client, table)
    return Store(dynamo)


@pytest.fixture(scope="module")
def store(embedded_dynamodb: str) -> Store:
    return _new_store(embedded_dynamodb)


@pytest.fixture
def fresh_store(embedded_dynamodb: str) -> Store:
    """A table of its own: the sweeper scans the whole table."""
    return _new_store(embedded_dynamodb)


def _account(store: Store, usd: int = 1) -> str:
    return store.accounts.create(f"t-{secrets.token_hex(3)}", credits=usd * USD).id


def _hold(account_id: str, amount: int, *, model: str = "echo", created_ms: int | None = None,
          key_id: str = "") -> Hold:
    return Hold(id=f"req_{secrets.token_hex(8)}", account_id=account_id, amount=amount,
                model=model, endpoint="/v1/chat/completions", key_id=key_id,
                created_ms=int(time.time() * 1000) if created_ms is None else created_ms)


def assert_books(store: Store, account_id: str) -> None:
    """balance + open holds + Σ charges − Σ credits = 0, counters = ledger sums."""
    account = store.accounts.require(account_id)
    entries = store.ledger.all_entries(account_id)
    charged = sum(e.amount for e in entries if e.type == "charge")
    credited = sum(e.amount for e in entries if e.type == "credit")
    assert account.balance >= 0
    assert account.balance + account.held + account.charged - account.credited == 0
    assert (account.charged, account.credited) == (charged, credited)


def _charges(store: Store, account_id: str) -> list:
    return [e for e in store.ledger.all_entries(account_id) if e.type == "charge"]


# ---------------------------------------------------------------- reserve
def test_reserve_moves_exactly_the_amount_into_a_hold(store: Store) -> None:
    account_id = _account(store)
    assert_books(store, account_id)
    hold = _hold(account_id, 123_456_789)
    assert store.ledger.reserve(hold) is None
    account = store.accounts.require(account_id)
    assert account.balance == USD - 123_456_789
    assert account.held == 123_456_789
    assert account.holds[hold.id]["amount"] == 123_456_789
    assert account.holds[hold.id]["model"] == "echo"
    assert account.charged == 0
    assert_books(store, account_id)


def test_reserve_whole_balance_is_allowed(store: Store) -> None:
    account_id = _account(store)
    assert store.ledger.reserve(_hold(account_id, USD)) is None
    assert store.accounts.require(account_id).balance == 0
    assert_books(store, account_id)


def test_reserve_refused_when_balance_too_low(store: Store) -> None:
    account_id = _account(store)
    refused = store.ledger.reserve(_hold(account_id, USD + 1))
    assert refused is not None
    assert refused.id == account_id
    assert refused.balance == USD
    assert store.accounts.require(account_id).balance == USD
    assert store.accounts.require(account_id).holds == {}
    assert_books(store, account_id)


def test_reserve_refused_when_cap_below_amount(store: Store) -> None:
    account_id = _account(store)
    store.accounts.set_cap(account_id, "echo", 1000)
    refused = store.ledger.reserve(_hold(account_id, 1001, model="echo"))
    assert refused is not None
    assert refused.balance == USD and refused.caps == {"echo": 1000}
    # the cap is per model, and a hold at the cap fits
    assert store.ledger.reserve(_hold(account_id, 5000, model="gpt-4o-mini")) is None
    assert store.ledger.reserve(_hold(account_id, 1000, model="echo")) is None
    assert store.accounts.require(account_id).balance == USD - 6000
    assert_books(store, account_id)


def test_reserve_same_hold_id_twice_is_refused(store: Store) -> None:
    account_id = _account(store)
    hold = _hold(account_id, 10)
    assert store.ledger.reserve(hold) is None
    assert store.ledger.reserve(hold) is not None
    assert store.accounts.require(account_id).balance == USD - 10
    assert_books(store, account_id)


def test_reserve_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.ledger.reserve(_hold("acct_missing", 1))


# ---------------------------------------------------------------- settle
@pytest.mark.parametrize(("charge", "expected"), [(400, 400), (1000, 1000), (5000, 1000),
                                                  (0, 0)])
def test_settle_charges_min_of_charge_and_hold(store: Store, charge: int, expected: int) -> None:
    account_id = _account(store)
    hold = _hold(account_id, 1000)
    store.ledger.reserve(hold)
    settlement = Settlement(charge=charge, input_tokens=10, cached_input_tokens=4,
                            output_tokens=20, reasoning_tokens=5)
    assert store.ledger.settle(hold, settlement) is True
    account = store.accounts.require(account_id)
    assert account.balance == USD - expected
    assert account.holds == {}
    assert account.charged == expected
    charges = _charges(store, account_id)
    assert len(charges) == 1
    entry = charges[0]
    assert (entry.amount, entry.request_id, entry.model, entry.status) == (
        expected, hold.id, "echo", "ok")
    assert (entry.input_tokens, entry.cached_input_tokens, entry.output_tokens,
            entry.reasoning_tokens) == (10, 4, 20, 5)
    assert_books(store, account_id)


def test_settle_twice_changes_nothing_the_second_time(store: Store) -> None:
    account_id = _account(store)
    hold = _hold(account_id, 1000)
    store.ledger.reserve(hold)
    assert store.ledger.settle(hold, Settlement(charge=300)) is True
    before = store.accounts.require(account_id)
    # the retry after a lost response, even with a different charge
    assert store.ledger.settle(hold, Settlement(charge=900)) is False
    after = store.accounts.require(account_id)
    assert (after.balance, after.charged, after.holds) == (before.balance, before.charged, {})
    assert [e.amount for e in _charges(store, account_id)] == [300]
    assert_books(store, account_id)


def test_settle_updates_key_last_used(store: Store) -> None:
    account_id = _account(store)
    _, record = store.keys.create(account_id, "k")
    hold = _hold(account_id, 1000, key_id=record.key_id)
    store.ledger.reserve(hold)
    store.ledger.settle(hold, Settlement(charge=1))
    (listed,) = store.keys.list(account_id)
    assert listed.last_used is not None
    assert_books(store, account_id)


# ---------------------------------------------------------------- sweeper
def test_sweeper_expires_stale_hold_for_nothing(fresh_store: Store) -> None:
    store = fresh_store
    account_id = _account(store)
    now = int(time.time() * 1000)
    stale = _hold(account_id, 7000, created_ms=now - 60_000)
    fresh = _hold(account_id, 3000, created_ms=now)
    store.ledger.reserve(stale)
    store.ledger.reserve(fresh)
    assert_books(store, account_id)
    assert sweep(store.ledger, now_ms=now, max_age_ms=30_000) == {"stale": 1, "settled": 1}
    account = store.accounts.require(account_id)
    assert set(account.holds) == {fresh.id}
    assert account.balance == USD - 3000
    (entry,) = _charges(store, account_id)
    assert (entry.request_id, entry.amount, entry.status) == (stale.id, 0, "expired")
    assert_books(store, account_id)
    # nothing left to sweep
    assert sweep(store.ledger, now_ms=now, max_age_ms=30_000) == {"stale": 0, "settled": 0}


def test_sweep_then_late_settle_settles_once(fresh_store: Store) -> None:
    store = fresh_store
    account_id = _account(store)
    hold = _hold(account_id, 5000, created_ms=1_000)
    store.ledger.reserve(hold)
    assert sweep(store.ledger, now_ms=10_000, max_age_ms=1_000)["settled"] == 1
    assert store.ledger.settle(hold, Settlement(charge=4000)) is False
    assert [(e.amount, e.status) for e in _charges(store, account_id)] == [(0, "expired")]
    assert store.accounts.require(account_id).balance == USD
    assert_books(store, account_id)


def test_late_settle_then_sweep_settles_once(fresh_store: Store) -> None:
    store = fresh_store
    account_id = _account(store)
    hold = _hold(account_id, 5000, created_ms=1_000)
    store.ledger.reserve(hold)
    assert store.ledger.settle(hold, Settlement(charge=4000)) is True
    assert sweep(store.ledger, now_ms=10_000, max_age_ms=1_000) == {"stale": 0, "settled": 0}
    assert [(e.amount, e.status) for e in _charges(store, account_id)] == [(4000, "ok")]
    assert store.accounts.require(account_id).balance == USD - 4000
    assert_books(store, account_id)


def _race(*calls: Callable[[], object]) -> list[object]:
    results: list[object] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    return results


def test_sweep_racing_settle_settles_exactly_once(fresh_store: Store) -> None:
    store = fresh_store
    account_id = _account(store)
    hold = _hold(account_id, 5000, created_ms=1_000)
    store.ledger.reserve(hold)
    swept, settled = _race(lambda: sweep(store.ledger, now_ms=10_000, max_age_ms=1_000),
                           lambda: store.ledger.settle(hold, Settlement(charge=4000)))
    assert swept["settled"] + int(settled) == 1
    charges = _charges(store, account_id)
    assert len(charges) == 1
    account = store.accounts.require(account_id)
    assert account.holds == {}
    assert account.balance == USD - charges[0].amount
    assert_books(store, account_id)


def test_two_sweeps_at_once_settle_once(fresh_store: Store) -> None:
    store = fresh_store
    account_id = _account(store)
    holds = [_hold(account_id, 1000 * (i + 1), created_ms=1_000) for i in range(3)]
    for hold in holds:
        store.ledger.reserve(hold)
    results = _race(*[lambda: sweep(store.ledger, now_ms=10_000, max_age_ms=1_000)] * 3)
    assert sum(r["settled"] for r in results) == 3
    charges = _charges(store, account_id)
    assert sorted(e.request_id for e in charges) == sorted(h.id for h in holds)
    account = store.accounts.require(account_id)
    assert (account.balance, account.holds, account.charged) == (USD, {}, 0)
    assert_books(store, account_id)


def test_concurrent_reserves_never_oversell(store: Store) -> None:
    account_id = _account(store)  # 1 USD: room for exactly 3 holds of 0.3
    holds = [_hold(account_id, 300_000_000_000) for _ in range(6)]
    results = _race(*[lambda h=h: store.ledger.reserve(h) for h in holds])
    assert sum(r is None for r in results) == 3
    account = store.accounts.require(account_id)
    assert account.balance == USD - 900_000_000_000 and len(account.holds) == 3
    assert_books(store, account_id)


# ---------------------------------------------------------------- books, step by step
def test_books_balance_after_every_step(store: Store) -> None:
    account_id = _account(store, usd=2)
    assert_books(store, account_id)
    steps: list[Callable[[], object]] = []
    a, b, c = (_hold(account_id, amount) for amount in (500_000, 700_000, 900_000))
    steps += [lambda: store.ledger.reserve(a), lambda: store.ledger.reserve(b),
              lambda: store.accounts.add_credits(account_id, 1234),
              lambda: store.ledger.settle(a, Settlement(charge=499_999)),
              lambda: store.ledger.reserve(c),
              lambda: store.ledger.settle(b, Settlement(charge=10**9)),
              lambda: store.ledger.settle(b, Settlement(charge=1)),
              lambda: store.ledger.settle(c, Settlement(charge=0, status="error")),
              lambda: store.accounts.add_credits(account_id, 5, credit_id="pay-1"),
              lambda: store.accounts.add_credits(account_id, 5, credit_id="pay-1")]
    for step in steps:
        step()
        assert_books(store, account_id)
    account = store.accounts.require(account_id)
    assert account.charged == 499_999 + 700_000
    assert account.credited == 2 * USD + 1234 + 5
    assert account.balance == 2 * USD + 1234 + 5 - 499_999 - 700_000


# ---------------------------------------------------------------- credits
def test_add_credits_with_same_credit_id_credits_once(store: Store) -> None:
    account_id = _account(store)
    first = store.accounts.add_credits(account_id, 5 * USD, credit_id="stripe-evt-1")
    second = store.accounts.add_credits(account_id, 5 * USD, credit_id="stripe-evt-1")
    assert first.balance == second.balance == 6 * USD
    assert store.accounts.require(account_id).credited == 6 * USD
    credits = [e for e in store.ledger.all_entries(account_id) if e.type == "credit"]
    assert sorted(e.amount for e in credits) == [USD, 5 * USD]
    # a different id is a different credit
    store.accounts.add_credits(account_id, 5 * USD, credit_id="stripe-evt-2")
    assert store.accounts.require(account_id).balance == 11 * USD
    assert_books(store, account_id)


def test_add_credits_without_id_credits_every_time(store: Store) -> None:
    account_id = _account(store)
    store.accounts.add_credits(account_id, USD)
    store.accounts.add_credits(account_id, USD)
    assert store.accounts.require(account_id).balance == 3 * USD
    assert_books(store, account_id)


def test_add_credits_refuses_unknown_account_and_non_positive(store: Store) -> None:
    with pytest.raises(NotFound):
        store.accounts.add_credits("acct_missing", USD)
    with pytest.raises(ValueError):
        store.accounts.add_credits(_account(store), 0)


def test_usage_lists_credits_added_with_an_idempotency_id(store: Store) -> None:
    """Bug: a credit with a credit_id is stored at SK `LEDGER#CREDIT#<id>`, which
    sorts after every `LEDGER#<ms>#…` key and outside the range `entries()`
    queries, so the usage listing (CLI `usage`, /v1/account/usage) never shows it."""
    account_id = _account(store)
    store.accounts.add_credits(account_id, 2 * USD, credit_id="stripe-evt-9")
    credits = store.ledger.entries(account_id, kind="credit")
    assert sorted(e.amount for e in credits) == [USD, 2 * USD]


def test_entries_newest_first_and_filtered(store: Store) -> None:
    account_id = _account(store)
    holds = [_hold(account_id, 100, model=m) for m in ("echo", "gpt-4o-mini", "echo")]
    for hold in holds:
        store.ledger.reserve(hold)
        store.ledger.settle(hold, Settlement(charge=10))
        time.sleep(0.002)  # distinct millisecond sort keys
    entries = store.ledger.entries(account_id)
    assert [e.request_id for e in entries if e.type == "charge"] == [h.id for h in holds][::-1]
    assert entries[-1].type == "credit" and entries[-1].note == "opening credit"
    echo = store.ledger.entries(account_id, model="echo")
    assert [e.request_id for e in echo] == [holds[2].id, holds[0].id]
    assert len(store.ledger.entries(account_id, limit=2)) == 2


# ---------------------------------------------------------------- keys
def test_keys_create_lookup_list_revoke(store: Store) -> None:
    account_id = _account(store)
    key, record = store.keys.create(account_id, "laptop")
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    assert record.prefix == key[:12]
    # only the hash is stored: the plaintext appears in no item of the table
    db = store.dynamo
    items = db.client.scan(TableName=db.table)["Items"]
    assert key not in repr(items)
    assert hash_key(key) in repr(items)
    found = store.keys.lookup(key)
    assert found is not None
    assert (found.key_id, found.account_id, found.status) == (record.key_id, account_id,
                                                              "active")
    other_key, other = store.keys.create(account_id, "ci")
    listed = store.keys.list(account_id)
    assert [k.key_id for k in listed] == [record.key_id, other.key_id]
    assert [k.name for k in listed] == ["laptop", "ci"]
    revoked = store.keys.revoke(record.key_id, account_id=account_id)
    assert revoked.status == "revoked" and not revoked.active
    assert store.keys.lookup(key).status == "revoked"
    assert store.keys.lookup(other_key).status == "active"
    assert {k.key_id: k.status for k in store.keys.list(account_id)} == {
        record.key_id: "revoked", other.key_id: "active"}


def test_lookup_unknown_key_is_none(store: Store) -> None:
    assert store.keys.lookup("afk-" + "0" * 48) is None


def test_revoke_with_another_accounts_id_is_not_found(store: Store) -> None:
    owner, stranger = _account(store), _account(store)
    key, record = store.keys.create(owner)
    with pytest.raises(NotFound):
        store.keys.revoke(record.key_id, account_id=stranger)
    assert store.keys.lookup(key).status == "active"


def test_revoke_unknown_key_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.keys.revoke("key_doesnotexist")


def test_key_for_unknown_account_is_refused(store: Store) -> None:
    with pytest.raises(NotFound):
        store.keys.create("acct_missing")


# ---------------------------------------------------------------- property
_OPS = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=USD // 2)),
    st.tuples(st.just("settle"), st.integers(min_value=0, max_value=USD)),
    st.tuples(st.just("resettle"), st.integers(min_value=0, max_value=USD)),
    st.tuples(st.just("credit"), st.integers(min_value=1, max_value=USD)),
), min_size=1, max_size=8)


@settings(max_examples=12, deadline=None)
@given(ops=_OPS)
def test_books_balance_under_any_sequence(store: Store, ops: list[tuple[str, int]]) -> None:
    account_id = _account(store)
    open_holds: list[Hold] = []
    settled: list[Hold] = []
    balance = USD
    for op, value in ops:
        if op == "reserve":
            hold = _hold(account_id, value)
            refused = store.ledger.reserve(hold)
            assert (refused is None) == (value <= balance)
            if refused is None:
                open_holds.append(hold)
                balance -= value
        elif op == "settle" and open_holds:
            hold = open_holds.pop(0)
            assert store.ledger.settle(hold, Settlement(charge=value)) is True
            settled.append(hold)
            balance += hold.amount - min(value, hold.amount)
        elif op == "resettle" and settled:
            assert store.ledger.settle(settled[-1], Settlement(charge=value)) is False
        elif op == "credit":
            store.accounts.add_credits(account_id, value)
            balance += value
        assert store.accounts.require(account_id).balance == balance
        assert_books(store, account_id)
