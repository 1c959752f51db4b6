"""The money protocol as a state machine, on DynamoDB's real semantics.

Several environments (wallets) spend from one account through the semantics
layer (tests/fakes/dynamodb_semantics.py), while hypothesis interleaves
calls starting and finishing, credits, the clock moving, sweeps, injected
transaction conflicts and throttles, and processes killed between any two
writes (the write lands, the process dies before it hears back).

After every step: the account item balances (balance + leased + charged −
credited = 0, balance ≥ 0), the statement's charges are the ledger's, no
request is charged twice and no charge exceeds its hold. At the end, once
every environment is gone and the leases are reconciled: no lease is open,
every call whose settle returned is billed exactly, and nothing else is.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from afk.background import Inline
from afk.billing.wallet import Shortfall, Wallet
from afk.local.dynamodb import EmbeddedDynamoDB
from afk.store import Dynamo, Hold, Lease, Settlement, Store, create_table
from afk.store.ledger import charge_item
from afk.sweeper import sweep
from tests.fakes.dynamodb_semantics import DynamoDBSemantics

CENT = 10**10
TABLE = "afk-protocol"
MAX_CALL_S = 60
WRITES = frozenset({"put_item", "update_item", "transact_write_items", "delete_item"})


class Crash(BaseException):
    """The process died: raised after a write reached DynamoDB."""


class MortalClient:
    """A DynamoDB client whose process can be set to die right after its next write."""

    def __init__(self, client) -> None:
        self._client, self.armed = client, False

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name not in WRITES:
            return attribute

        def write(**kwargs):
            result = attribute(**kwargs)
            if self.armed:
                raise Crash(name)
            return result
        return write


_proxy: DynamoDBSemantics | None = None


def proxy() -> DynamoDBSemantics:
    global _proxy
    if _proxy is None:
        db = EmbeddedDynamoDB().start()
        _proxy = DynamoDBSemantics(db.endpoint, single_latency=0.0,
                                   transaction_latency=0.0).start()
        create_table(Dynamo(TABLE, endpoint_url=_proxy.endpoint).client, TABLE)
    return _proxy


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class MoneyProtocol(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.semantics = proxy()
        self.store = Store(Dynamo(TABLE, endpoint_url=self.semantics.endpoint))
        self.account = self.store.accounts.create("protocol", credits=100 * CENT).id
        self.clock = Clock()
        self.envs: dict[int, tuple[Wallet, MortalClient]] = {}
        self.next_env = 0
        self.in_flight: list[tuple[int, Hold, float]] = []  # env, hold, started
        self.billed: dict[str, int] = {}      # request id -> charge, settle returned
        self.maybe: dict[str, int] = {}       # settle's write landed, process died
        for _ in range(2):
            self.spawn()

    def spawn(self) -> None:
        client = MortalClient(Dynamo(TABLE, endpoint_url=self.semantics.endpoint).client)
        store = Store(Dynamo(TABLE, client=client, retry_budget=2.0))
        # Inline: the wallet's background work (renewals, closes) runs in the
        # rules' own steps, where a process can die between any two writes too.
        wallet = Wallet(store.leases, store.keys, owner=f"env{self.next_env}",
                        max_call_s=MAX_CALL_S, clock=self.clock, background=Inline())
        self.envs[self.next_env] = (wallet, client)
        self.next_env += 1

    def die(self, env: int) -> None:
        self.envs.pop(env)
        self.in_flight = [c for c in self.in_flight if c[0] != env]  # crashed calls

    # ------------------------------------------------------------ rules
    @precondition(lambda self: len(self.envs) < 4)
    @rule()
    def new_environment(self) -> None:
        self.spawn()

    @precondition(lambda self: self.envs)
    @rule(data=st.data(), amount=st.integers(1, 30).map(lambda c: c * CENT // 10),
          crash=st.booleans())
    def start_call(self, data, amount: int, crash: bool) -> None:
        env = data.draw(st.sampled_from(sorted(self.envs)))
        wallet, client = self.envs[env]
        hold = Hold(id=f"req_{secrets.token_hex(6)}", account_id=self.account, amount=amount,
                    model="echo", endpoint="/v1/chat/completions", key_id="", created_ms=1)
        client.armed = crash
        try:
            result = wallet.reserve_local(hold) or wallet.reserve(hold)
        except Crash:
            self.die(env)  # killed between the grant's write and anything after it
            return
        finally:
            client.armed = False
        if isinstance(result, Shortfall):
            assert result.spendable < amount
            return
        assert isinstance(result, Lease)
        self.in_flight.append((env, replace(hold, lease_id=result.id), self.clock.now))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), fraction=st.integers(0, 120), crash=st.booleans())
    def finish_call(self, data, fraction: int, crash: bool) -> None:
        env, hold, _ = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        self.settle(env, hold, hold.amount * fraction // 100, crash)  # > 100%: above the hold

    def settle(self, env: int, hold: Hold, charge: int, crash: bool = False) -> None:
        wallet, client = self.envs[env]
        client.armed = crash
        try:
            durable = wallet.settle(hold, Settlement(charge=charge))
        except Crash:
            self.maybe[hold.id] = min(charge, hold.amount)
            self.die(env)
            return
        finally:
            client.armed = False
        assert durable
        self.billed[hold.id] = min(charge, hold.amount)

    @rule(kind=st.sampled_from(["conflict", "throttle"]),
          op=st.sampled_from(["TransactWriteItems", "PutItem", "UpdateItem"]),
          count=st.integers(1, 3))
    def dynamodb_is_busy(self, kind: str, op: str, count: int) -> None:
        if kind == "conflict" and op == "PutItem":
            op = "UpdateItem"
        self.semantics.inject(kind, op=op, count=count)

    @rule(amount=st.integers(1, 50).map(lambda c: c * CENT // 10))
    def credit(self, amount: int) -> None:
        self.store.accounts.add_credits(self.account, amount)

    @rule(seconds=st.sampled_from([5, 30, 61, 200, 700]))
    def time_passes(self, seconds: int) -> None:
        # No call outlives its function: the pipeline stops and settles it before
        # the deadline (MAX_CALL_S), as a cut call billed for what it used.
        for call in [c for c in self.in_flight if c[2] + MAX_CALL_S < self.clock.now + seconds]:
            self.in_flight.remove(call)
            self.settle(call[0], call[1], call[1].amount // 3)
        self.clock.now += seconds

    @rule()
    def sweeper_runs(self) -> None:
        sweep(self.store.leases, now_ms=int(self.clock.now * 1000), account_id=self.account)

    @precondition(lambda self: self.envs)
    @rule(data=st.data())
    def environment_retires(self, data) -> None:
        env = data.draw(st.sampled_from(sorted(self.envs)))
        wallet, _ = self.envs[env]
        wallet.release(self.account)

    # ------------------------------------------------------------ checks
    @invariant()
    def books_balance(self) -> None:
        if not hasattr(self, "store"):
            return
        self.semantics.reset()  # pending faults must not hit the checks' own reads
        statement = self.store.leases.statement(self.account)
        account = statement.account
        assert account.balance >= 0
        assert account.balance + account.leased + account.charged - account.credited == 0
        charges = [e for e in self.store.ledger.all_entries(self.account) if e.type == "charge"]
        ids = [e.request_id for e in charges]
        assert len(ids) == len(set(ids))  # nothing charged twice
        assert statement.charged == sum(e.amount for e in charges)
        assert set(self.billed) <= set(ids)  # every settled call is billed
        for entry in charges:
            assert entry.amount == self.billed.get(entry.request_id,
                                                   self.maybe.get(entry.request_id))

    def teardown(self) -> None:
        if not hasattr(self, "store"):
            return
        self.semantics.reset()
        for env in list(self.envs):
            self.die(env)  # whatever was in flight crashed with its process
        sweep(self.store.leases, now_ms=int(self.clock.now * 1000) + 10**9,
              account_id=self.account)
        statement = self.store.leases.statement(self.account)
        assert statement.leases == [] and statement.held == 0
        charges = {e.request_id: e.amount for e in self.store.ledger.all_entries(self.account)
                   if e.type == "charge"}
        assert {k: v for k, v in charges.items() if k not in self.maybe} == self.billed
        account = statement.account
        assert account.charged == sum(charges.values())
        assert account.balance + account.charged == account.credited


MoneyProtocol.TestCase.settings = settings(
    max_examples=10, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestMoneyProtocol = MoneyProtocol.TestCase


@pytest.fixture(autouse=True, scope="module")
def _stop_proxy() -> Iterator[None]:
    yield
    global _proxy
    if _proxy is not None:
        _proxy.stop()
        _proxy = None


def test_a_replayed_charge_after_a_crash_is_recorded_once() -> None:
    """A settle whose write landed but whose process died, replayed (by a retry
    of the same request id), writes nothing more."""
    store = Store(Dynamo(TABLE, endpoint_url=proxy().endpoint))
    account = store.accounts.create("replay", credits=CENT).id
    wallet = Wallet(store.leases, owner="env")
    hold = Hold(id="req_replay", account_id=account, amount=CENT // 2, model="echo",
                endpoint="/v1/chat/completions", key_id="", created_ms=1)
    lease = wallet.reserve(hold)
    settled = replace(hold, lease_id=lease.id)
    wallet.settle(settled, Settlement(charge=100))
    store.leases.record_charge(lease, charge_item(settled, Settlement(charge=100), 2))
    assert [e.amount for e in store.ledger.all_entries(account) if e.type == "charge"] == [100]
