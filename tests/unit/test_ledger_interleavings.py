"""The ledger invariant under any interleaving of what concurrent requests, an
operator and the sweeper do to one account: reserve, settle (and retried
settles), credit, cap changes, and sweeper runs that race late settles.

After every step: balance ≥ 0, and balance + open holds + Σ charges − Σ credits
= 0, exactly, with the account's counters equal to the ledger's sums.
"""

from __future__ import annotations

import secrets

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from afk.local.dynamodb import EmbeddedDynamoDB
from afk.store import Dynamo, Hold, Settlement, Store, create_table
from afk.sweeper import sweep

MICRO = 10**6  # amounts in millionths of a dollar keep examples readable
MODELS = ("echo", "gpt-4o-mini")

_db: EmbeddedDynamoDB | None = None


def fresh_store() -> Store:
    global _db
    if _db is None:
        _db = EmbeddedDynamoDB().start()
    table = f"afk-interleave-{secrets.token_hex(4)}"  # the sweeper scans its own table only
    dynamo = Dynamo(table, endpoint_url=_db.endpoint)
    create_table(dynamo.client, table)
    return Store(dynamo)


class Account(RuleBasedStateMachine):
    holds = Bundle("holds")
    settled = Bundle("settled")

    def __init__(self) -> None:
        super().__init__()
        self.store = fresh_store()
        self.account_id = self.store.accounts.create("interleavings", credits=500 * MICRO).id
        self.balance = 500 * MICRO  # the model the store must agree with
        self.caps: dict[str, int] = {}
        self.open: dict[str, Hold] = {}
        self.clock = 1_000  # hold creation times, so sweeps can pick the stale ones

    @rule(target=holds, amount=st.integers(1, 300).map(lambda a: a * MICRO),
          model=st.sampled_from(MODELS))
    def reserve(self, amount: int, model: str):
        self.clock += 10
        hold = Hold(id=f"req_{secrets.token_hex(6)}", account_id=self.account_id, amount=amount,
                    model=model, endpoint="chat.completions", key_id="", created_ms=self.clock)
        refused = self.store.ledger.reserve(hold)
        affordable = amount <= self.balance and amount <= self.caps.get(model, amount)
        assert (refused is None) == affordable
        if refused is None:
            self.balance -= amount
            self.open[hold.id] = hold
        return hold

    @rule(target=settled, hold=consumes(holds), charge=st.integers(0, 400).map(
        lambda c: c * MICRO))
    def settle(self, hold: Hold, charge: int):
        done = self.store.ledger.settle(hold, Settlement(charge=charge))
        assert done == (hold.id in self.open)  # refused holds and swept ones: nothing to do
        if done:
            del self.open[hold.id]
            self.balance += hold.amount - min(charge, hold.amount)
        return hold

    @rule(hold=settled, charge=st.integers(0, 400).map(lambda c: c * MICRO))
    def settle_again_after_a_lost_response(self, hold: Hold, charge: int):
        assert self.store.ledger.settle(hold, Settlement(charge=charge)) is False

    @rule(amount=st.integers(1, 200).map(lambda a: a * MICRO))
    def credit(self, amount: int):
        self.store.accounts.add_credits(self.account_id, amount)
        self.balance += amount

    @rule(model=st.sampled_from(MODELS), amount=st.integers(1, 300).map(lambda a: a * MICRO))
    def set_cap(self, model: str, amount: int):
        self.store.accounts.set_cap(self.account_id, model, amount)
        self.caps[model] = amount

    @rule(model=st.sampled_from(MODELS))
    def clear_cap(self, model: str):
        self.store.accounts.clear_cap(self.account_id, model)
        self.caps.pop(model, None)

    @rule(age=st.integers(0, 60))
    def sweeper_runs(self, age: int):
        cutoff = self.clock - age
        stale = [h for h in self.open.values() if h.created_ms < cutoff]
        result = sweep(self.store.ledger, now_ms=cutoff, max_age_ms=0)
        assert result["settled"] == len(stale)
        for hold in stale:
            del self.open[hold.id]
            self.balance += hold.amount  # a swept hold is released in full

    @invariant()
    def books_balance(self):
        account = self.store.accounts.require(self.account_id)
        entries = self.store.ledger.all_entries(self.account_id)
        charged = sum(e.amount for e in entries if e.type == "charge")
        credited = sum(e.amount for e in entries if e.type == "credit")
        assert account.balance == self.balance >= 0
        assert account.balance + account.held + charged - credited == 0
        assert (account.charged, account.credited) == (charged, credited)
        assert set(account.holds) == set(self.open)


Account.TestCase.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
test_ledger_interleavings = Account.TestCase


@pytest.fixture(scope="module", autouse=True)
def _stop_db():
    yield
    global _db
    if _db is not None:
        _db.stop()
        _db = None
