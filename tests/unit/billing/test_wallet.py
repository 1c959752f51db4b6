"""afk.billing.wallet, afk.store.leases and afk.sweeper against a real embedded
DynamoDB: what each reserve and settle writes, lease sizing, renewal and
rotation, closing exactly once, and the sweeper's access path."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest

from afk.billing.wallet import (
    LEASE_SHARE,
    MIN_CALLS_PER_LEASE,
    ROTATE_AFTER_S,
    Shortfall,
    Wallet,
)
from afk.store import Dynamo, Hold, Lease, Settlement, Store
from afk.sweeper import sweep
from tests.support.tables import new_table

USD = 10**12
CENT = USD // 100


class CountingClient:
    """The real DynamoDB client, counting the operations made through it."""

    def __init__(self, client) -> None:
        self._client, self.calls = client, Counter()
        self.background_calls: Counter[str] = Counter()  # made by the wallet's worker

    def _count(self, name: str) -> None:
        self.calls[name] += 1
        if threading.current_thread().name.startswith("afk-background"):
            self.background_calls[name] += 1

    def clear(self) -> None:
        self.calls.clear()
        self.background_calls.clear()

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name == "get_paginator":
            def paginator(operation: str):
                self._count(operation)
                return attribute(operation)
            return paginator
        if callable(attribute) and not name.startswith("_") and name != "exceptions":
            def call(**kwargs):
                self._count(name)
                return attribute(**kwargs)
            return call
        return attribute


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(embedded_dynamodb: str):
    """A table of its own (the sweeper's queries see only this test's leases), and
    a client that counts."""
    dynamo = new_table(embedded_dynamodb, "afk-wallet")
    counting = CountingClient(dynamo.client)
    return Store(Dynamo(dynamo.table, client=counting)), counting


def _wallet(store: Store, clock: Callable[[], float] | None = None) -> Wallet:
    return Wallet(store.leases, store.keys, owner=f"env-{secrets.token_hex(2)}",
                  max_call_s=900, **({"clock": clock} if clock else {}))


def _hold(account_id: str, amount: int, *, key_id: str = "") -> Hold:
    return Hold(id=f"req_{secrets.token_hex(8)}", account_id=account_id, amount=amount,
                model="echo", endpoint="/v1/chat/completions", key_id=key_id,
                created_ms=1)


def _reserve(wallet: Wallet, hold: Hold) -> Hold:
    lease = wallet.reserve_local(hold) or wallet.reserve(hold)
    assert isinstance(lease, Lease), lease
    return replace(hold, lease_id=lease.id)


def assert_books(store: Store, account_id: str) -> None:
    statement = store.leases.statement(account_id)
    account = statement.account
    entries = store.ledger.all_entries(account_id)
    charged = sum(e.amount for e in entries if e.type == "charge")
    credited = sum(e.amount for e in entries if e.type == "credit")
    assert account.balance >= 0
    assert account.balance + account.leased + account.charged - account.credited == 0
    assert (statement.charged, account.credited) == (charged, credited)


def test_a_warm_call_makes_no_call_before_upstream_and_one_write_after(table) -> None:
    store, client = table
    clock = Clock()
    account = store.accounts.create("t", credits=10 * USD).id
    wallet = _wallet(store, clock)
    first = _reserve(wallet, _hold(account, CENT))
    wallet.settle(first, Settlement(charge=CENT // 3))
    client.clear()

    # A call every ten seconds for over ten minutes: the lease runs low on money,
    # on time, and gets old enough to rotate; all of that is the wallet worker's.
    for done in range(70):
        hold = _hold(account, CENT)
        lease = wallet.reserve_local(hold)  # the pipeline's fast path
        assert lease is not None
        assert client.calls - client.background_calls == Counter(put_item=done)
        held = replace(hold, lease_id=lease.id)
        wallet.settle(held, Settlement(charge=CENT // 2))
        wallet.background.drain()
        clock.now += 10
    assert client.calls - client.background_calls == Counter(put_item=70)
    work = client.background_calls
    assert work["transact_write_items"] >= 10  # renewed, topped up, rotated (and closed)
    # Rotated: the first lease was folded in by the worker, one lease is open.
    assert store.accounts.require(account).charged > 0
    assert len(store.leases.open_leases(account)) == 1
    assert_books(store, account)


def test_a_grant_takes_a_few_calls_worth_never_more_than_a_quarter_of_the_balance(table):
    store, _ = table
    rich = store.accounts.create("rich", credits=10 * USD).id
    wallet = _wallet(store)
    _reserve(wallet, _hold(rich, CENT))
    [lease] = store.leases.open_leases(rich)
    assert lease.granted == MIN_CALLS_PER_LEASE * CENT
    assert store.accounts.require(rich).balance == 10 * USD - lease.granted

    poor = store.accounts.create("poor", credits=1 * CENT).id
    _reserve(wallet, _hold(poor, CENT // 10))  # 4 × 0.1¢ would be 0.4¢ > 1¢ / 4
    [small] = store.leases.open_leases(poor)
    assert small.granted == CENT // LEASE_SHARE
    assert_books(store, rich)
    assert_books(store, poor)


def test_a_call_that_needs_most_of_the_balance_takes_exactly_what_it_needs(table):
    store, _ = table
    account = store.accounts.create("t", credits=10 * CENT).id
    wallet = _wallet(store)
    _reserve(wallet, _hold(account, 9 * CENT))
    assert store.accounts.require(account).balance == 1 * CENT
    result = wallet.reserve(_hold(account, 2 * CENT))
    assert isinstance(result, Shortfall)
    assert result.spendable == 1 * CENT  # what the balance and the live lease could still do
    assert_books(store, account)


def test_an_unknown_account_is_not_found(table):
    from afk.errors import NotFound

    store, _ = table
    with pytest.raises(NotFound):
        _wallet(store).reserve(_hold("acct_missing", CENT))


def test_the_lease_grows_with_use_and_the_account_item_is_written_per_lease(table):
    store, client = table
    account = store.accounts.create("t", credits=100 * USD).id
    wallet = _wallet(store)
    holds = [_reserve(wallet, _hold(account, CENT)) for _ in range(64)]  # 64 in flight
    wallet.background.drain()
    grants = client.calls["transact_write_items"]
    assert grants <= 8  # 4, +4, +8, +16, +32, ... (and a top-up ahead): not one per call
    for hold in holds:
        wallet.settle(hold, Settlement(charge=CENT // 10))
    assert wallet.in_flight(account) == 0
    assert len(store.ledger.all_entries(account)) == 64 + 1
    assert_books(store, account)


def test_settling_a_charge_twice_records_it_once(table):
    store, _ = table
    account = store.accounts.create("t", credits=USD).id
    wallet = _wallet(store)
    hold = _reserve(wallet, _hold(account, CENT))
    wallet.settle(hold, Settlement(charge=CENT // 2))
    lease = store.leases.get(account, hold.lease_id)
    from afk.store.ledger import charge_item

    store.leases.record_charge(lease, charge_item(hold, Settlement(charge=CENT), 5))  # a replay
    [entry] = [e for e in store.ledger.all_entries(account) if e.type == "charge"]
    assert entry.amount == CENT // 2
    assert_books(store, account)


@pytest.mark.parametrize(("charge", "expected"), [(0, 0), (CENT // 2, CENT // 2),
                                                  (CENT, CENT), (5 * CENT, CENT)])
def test_a_charge_never_exceeds_its_hold(table, charge: int, expected: int):
    store, _ = table
    account = store.accounts.create("t", credits=USD).id
    wallet = _wallet(store)
    hold = _reserve(wallet, _hold(account, CENT))
    wallet.settle(hold, Settlement(charge=charge))
    [entry] = [e for e in store.ledger.all_entries(account) if e.type == "charge"]
    assert entry.amount == expected
    assert wallet.release(account) == 1
    assert store.accounts.require(account).balance == USD - expected
    assert_books(store, account)


def test_a_lease_is_renewed_while_in_use_and_rotated_after_a_while(table):
    store, _ = table
    clock = Clock()
    account = store.accounts.create("t", credits=USD).id
    wallet = _wallet(store, clock)
    first = _reserve(wallet, _hold(account, CENT))
    wallet.settle(first, Settlement(charge=1))
    lease = store.leases.get(account, first.lease_id)

    clock.now += 50  # inside the last 15 s of its minute: renewed, same lease
    renewed = _reserve(wallet, _hold(account, CENT))
    assert renewed.lease_id == first.lease_id
    wallet.background.drain()  # the renewal is the worker's
    moved = store.leases.get(account, first.lease_id)
    assert moved.expires_ms > lease.expires_ms and moved.reconcile_ms > lease.reconcile_ms
    assert moved.granted == lease.granted  # covered: the account item was not written

    clock.now += ROTATE_AFTER_S  # old enough: a new lease; the old one waits for its call
    rotated = _reserve(wallet, _hold(account, CENT))
    assert rotated.lease_id != first.lease_id
    assert {lease.id for lease in store.leases.open_leases(account)} == {
        first.lease_id, rotated.lease_id}
    wallet.settle(renewed, Settlement(charge=2))  # the old lease's call ends later ...
    wallet.background.drain()  # ... and then the worker folds the old lease in
    assert [lease.id for lease in store.leases.open_leases(account)] == [rotated.lease_id]
    wallet.settle(rotated, Settlement(charge=3))
    assert store.leases.get(account, first.lease_id).spent == 1 + 2
    assert_books(store, account)


def test_the_sweeper_folds_a_lease_in_once_and_only_when_due(table):
    store, client = table
    account = store.accounts.create("t", credits=USD).id
    wallet = _wallet(store)
    hold = _reserve(wallet, _hold(account, CENT))
    wallet.settle(hold, Settlement(charge=CENT // 4))
    lease = store.leases.get(account, hold.lease_id)

    assert sweep(store.leases, now_ms=lease.reconcile_ms - 1)["closed"] == 0
    client.clear()
    results: list[dict[str, int]] = []
    threads = [threading.Thread(target=lambda: results.append(
        sweep(store.leases, now_ms=lease.reconcile_ms))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["closed"] for r in results) == 1  # three sweepers at once: folded in once
    assert client.calls["scan"] == 0 and client.calls["query"] > 0  # a Query, never a Scan
    account_after = store.accounts.require(account)
    assert (account_after.balance, account_after.leased, account_after.charged) == (
        USD - CENT // 4, 0, CENT // 4)
    assert store.leases.open_leases(account) == []
    assert_books(store, account)


def test_a_sweep_racing_a_renewal_leaves_the_renewed_lease_alone(table):
    store, _ = table
    clock = Clock()
    account = store.accounts.create("t", credits=USD).id
    wallet = _wallet(store, clock)
    first = _reserve(wallet, _hold(account, CENT))
    due = store.leases.due(store.leases.get(account, first.lease_id).reconcile_ms)
    clock.now += 50
    _reserve(wallet, _hold(account, CENT))  # renewed after the sweeper's query
    wallet.background.drain()
    [lease] = due
    assert store.leases.close(lease, due_by_ms=lease.reconcile_ms) is False
    assert len(store.leases.open_leases(account)) == 1


def test_release_returns_idle_lease_money_at_once(table):
    store, _ = table
    account = store.accounts.create("t", credits=USD).id
    wallet = _wallet(store)
    busy = _reserve(wallet, _hold(account, CENT))
    assert wallet.release(account) == 0  # a call in flight: left alone
    wallet.settle(busy, Settlement(charge=7))
    assert wallet.release(account) == 1
    account_after = store.accounts.require(account)
    assert (account_after.balance, account_after.leased) == (USD - 7, 0)
    assert store.leases.statement(account).held == 0
    assert_books(store, account)


def test_last_used_is_written_at_most_once_a_minute_per_key(table):
    store, client = table
    clock = Clock()
    account = store.accounts.create("t", credits=USD).id
    _, record = store.keys.create(account, "k")
    wallet = _wallet(store, clock)
    client.clear()
    for _ in range(5):
        wallet.settle(_reserve(wallet, _hold(account, CENT, key_id=record.key_id)),
                      Settlement(charge=1))
    wallet.background.drain()
    assert client.calls["update_item"] == client.background_calls["update_item"] == 1
    [key] = store.keys.list(account)
    assert key.last_used is not None
    clock.now += 61
    wallet.settle(_reserve(wallet, _hold(account, CENT, key_id=record.key_id)),
                  Settlement(charge=1))
    wallet.background.drain()
    assert client.calls["update_item"] == 2


def test_concurrent_environments_never_oversell(table):
    store, _ = table
    account = store.accounts.create("t", credits=10 * CENT).id
    wallets = [_wallet(store) for _ in range(4)]
    reserved: list[Hold] = []
    lock = threading.Lock()

    def run(wallet: Wallet) -> None:
        for _ in range(10):
            hold = _hold(account, CENT)
            result = wallet.reserve_local(hold) or wallet.reserve(hold)
            if isinstance(result, Lease):
                with lock:
                    reserved.append(hold)

    threads = [threading.Thread(target=run, args=(w,)) for w in wallets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reserved) <= 10  # $0.10 covers ten 1¢ holds, never more
    statement = store.leases.statement(account)
    assert statement.account.balance >= 0
    assert_books(store, account)


def test_calls_reserved_while_a_top_up_is_in_flight_never_leave_a_hold_uncovered(table):
    """The fast path takes no lock on the lease's growth: a call reserved while
    another call's top-up transaction is in flight takes part of what it adds.
    The grower asks again for the rest instead of reserving money it lacks."""
    store, client = table
    account = store.accounts.create("t", credits=8 * CENT).id
    wallet = _wallet(store)
    first = _reserve(wallet, _hold(account, CENT))  # a 2¢ lease: a quarter of the balance
    assert store.leases.get(account, first.lease_id).granted == 2 * CENT

    side: list[Lease | None] = []
    transact = client.transact_write_items

    def racing(**kwargs):
        if not side:  # once: another call slips in on the fast path meanwhile
            side.append(wallet.reserve_local(_hold(account, CENT)))
        return transact(**kwargs)

    client.transact_write_items = racing
    big = _reserve(wallet, _hold(account, 3 * CENT))  # needs 2¢ more than the lease has
    assert side[0] is not None and side[0].id == big.lease_id
    lease = store.leases.get(account, big.lease_id)
    assert lease.granted >= 1 * CENT + 1 * CENT + 3 * CENT  # all three holds covered
    assert store.accounts.require(account).balance >= 0
    assert_books(store, account)
