"""afk.store (ledger, accounts, keys) against a real embedded DynamoDB: credits
exactly once, the usage listing, keys. (Reserve and settle: test_wallet.py.)"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

import pytest

from afk.billing.wallet import Wallet
from afk.errors import Conflict, NotFound
from afk.store import Hold, Settlement, Store
from afk.store.keys import KEY_PREFIX, hash_key
from tests.support.tables import new_table

USD = 10**12


def _new_store(endpoint: str) -> Store:
    return Store(new_table(endpoint))


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
    """balance + leased + charged − credited = 0; statement = ledger sums."""
    statement = store.leases.statement(account_id)
    account = statement.account
    entries = store.ledger.all_entries(account_id)
    charged = sum(e.amount for e in entries if e.type == "charge")
    credited = sum(e.amount for e in entries if e.type == "credit")
    assert account.balance >= 0
    assert account.balance + account.leased + account.charged - account.credited == 0
    assert (statement.charged, account.credited) == (charged, credited)


def _charges(store: Store, account_id: str) -> list:
    return [e for e in store.ledger.all_entries(account_id) if e.type == "charge"]


# ---------------------------------------------------------------- reserve
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


def test_reusing_a_credit_id_for_another_amount_or_account_is_a_conflict(
        store: Store) -> None:
    """Issue 14: an idempotency key names one credit. Replayed with other terms it is
    refused (409), never a silent no-op, and nothing moves."""
    account_id, other = _account(store), _account(store)
    store.accounts.add_credits(account_id, 5 * USD, credit_id="invoice-7")
    with pytest.raises(Conflict) as caught:
        store.accounts.add_credits(account_id, 6 * USD, credit_id="invoice-7")
    assert caught.value.status == 409 and "$5.00" in caught.value.message
    with pytest.raises(Conflict, match="another account"):
        store.accounts.add_credits(other, 5 * USD, credit_id="invoice-7")
    assert store.accounts.require(account_id).balance == 6 * USD
    assert store.accounts.require(other).balance == USD
    store.accounts.add_credits(account_id, 5 * USD, credit_id="invoice-7")  # same terms
    assert store.accounts.require(account_id).balance == 6 * USD
    assert_books(store, account_id)
    assert_books(store, other)


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
    """Charges live under leases (several environments' leases, so several usage
    shards); credits in the account's partition: the listing merges them."""
    account_id = _account(store)
    wallets = [Wallet(store.leases, owner=f"env{i}") for i in range(3)]
    holds = [_hold(account_id, 100, model=m) for m in ("echo", "gpt-4o-mini", "echo")]
    for wallet, hold in zip(wallets, holds, strict=True):
        lease = wallet.reserve(hold)
        wallet.settle(replace(hold, lease_id=lease.id), Settlement(charge=10))
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
