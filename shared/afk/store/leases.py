"""Credit leases and per-call charge records: the store side of the money protocol.

Why leases (docs/money.md has the whole argument and the failure analysis):
on real DynamoDB, an item every call of a customer writes is an item every
call waits on (a transaction holding it cancels the others, and one
partition key takes 1,000 write units a second). So no call writes the
account item. An execution environment takes a *lease*, a slice of the
balance, in one transaction, reserves its calls against it in memory, and
records each call's charge as an item of the lease's own partition, which
only that environment writes. The account item is written when a lease is
granted, topped up or closed: per lease, not per call.

Items (PK / SK):

  ACCOUNT#<a> / ACCOUNT         balance (not leased), leased (Σ granted of open
                                leases), charged (Σ charges of closed leases),
                                credited. Invariant on this item alone:
                                balance + leased + charged − credited = 0.
  ACCOUNT#<a> / LEASE#<l>       one lease: granted, state open|closed, expires_ms
                                (no call is reserved against it after this),
                                reconcile_ms (after this no call on it can still be
                                running: expiry + the longest invocation + margin),
                                version (optimistic lock), spent/calls once closed.
                                While open: GSI1PK=LEASES#<shard>,
                                GSI1SK=<reconcile_ms>#<a>#<l> (the sweeper's sparse index).
  LEASE#<l> / CHARGE#<request>  one call's charge: the ledger entry. Written once
                                (conditional on not existing: idempotent on the
                                request id). GSI1PK=USAGE#<a>#<shard>,
                                GSI1SK=<created_ms>#<request> (usage, newest first).

Closing a lease is one transaction: the account gets back `granted − Σ
charges`, `leased` drops by `granted`, `charged` grows by `Σ charges`, and
the lease becomes closed, conditional on its version, so exactly one closer
(its environment or the sweeper) folds it in.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from afk.errors import NotFound
from afk.records import dataclass
from afk.store.accounts import Account
from afk.store.budgets import Budget, OverBudget, release_write, reserve_write
from afk.store.dynamo import CONDITION_FAILED, ConditionFailed, Dynamo, get_n, get_s, n, s
from afk.store.items import (
    LEASE_SHARDS,
    USAGE_SHARDS,
    account_key,
    charge_key,
    iso,
    lease_key,
    shard,
    usage_partition,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

def charge_record(lease: Lease, item: dict[str, Any]) -> dict[str, Any]:
    """A call's ledger entry (ledger.charge_item) as stored under its lease, listed
    per account through gsi1's usage shards."""
    request_id = get_s(item, "request_id") or ""
    return {**charge_key(lease.id, request_id), **item, "lease_id": s(lease.id),
            "GSI1PK": s(usage_partition(lease.account_id, shard(lease.id, USAGE_SHARDS))),
            "GSI1SK": s(f"{get_n(item, 'created_ms'):013d}#{request_id}")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    id: str
    account_id: str
    granted: int        # pico-USD moved from the balance into this lease
    expires_ms: int     # no call may be reserved against it from then on
    reconcile_ms: int   # the sweeper may fold it in from then on
    version: int
    owner: str = ""
    state: str = "open"
    spent: int = 0      # Σ charges, known once closed
    calls: int = 0
    # A key's own lease (it has a spend limit: store/budgets.py): the key, and the
    # periods whose budget items its grants were reserved against.
    budget_key: str = ""
    budget_periods: tuple[str, ...] = ()

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lease:
        periods = item.get("budget_periods", {}).get("L", [])
        return cls(id=(get_s(item, "SK") or "").removeprefix("LEASE#"),
                   account_id=get_s(item, "account_id") or "",
                   granted=get_n(item, "granted"), expires_ms=get_n(item, "expires_ms"),
                   reconcile_ms=get_n(item, "reconcile_ms"), version=get_n(item, "version"),
                   owner=get_s(item, "owner") or "", state=get_s(item, "state") or "open",
                   spent=get_n(item, "spent"), calls=get_n(item, "calls"),
                   budget_key=get_s(item, "budget_key") or "",
                   budget_periods=tuple(p["S"] for p in periods))


@dataclass(frozen=True, slots=True)
class Refused:
    """A grant the balance could not cover: the account as it stands."""

    account: Account


@dataclass(frozen=True, slots=True)
class Statement:
    """An account's money as a customer reads it, exact at the moment of reading:
    `balance + held + charged − credited = 0` on every statement."""

    account: Account
    leases: list[Lease]
    pending_charges: int  # Σ charges recorded on open leases (not yet folded in)

    @property
    def charged(self) -> int:
        return self.account.charged + self.pending_charges

    @property
    def held(self) -> int:
        """Leased and not yet charged: in-flight calls and lease money an
        environment has not used (returned when the lease closes)."""
        return self.account.leased + self.account.held - self.pending_charges

    @property
    def remaining(self) -> int:
        """Credits not charged: what is left to spend once every lease is closed."""
        return self.account.balance + self.held


class Leases:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    # ------------------------------------------------------------ grants
    def grant(self, account_id: str, amount: int, *, expires_ms: int, reconcile_ms: int,
              owner: str, floor: int = 0, budget: Budget | None = None
              ) -> Lease | Refused | OverBudget:
        """A new lease of `amount`, taken from the balance in one transaction, if
        the balance is at least `floor` (and `amount`); with a `budget`, a key's own
        lease, reserved against its spend limits in the same transaction."""
        lease = Lease(id=f"lse_{secrets.token_hex(10)}", account_id=account_id,
                      granted=amount, expires_ms=expires_ms, reconcile_ms=reconcile_ms,
                      version=1, owner=owner,
                      budget_key=budget.key_id if budget else "",
                      budget_periods=budget.period_ids if budget else ())
        item = {**lease_key(account_id, lease.id), "account_id": s(account_id),
                "granted": n(amount), "state": s("open"), "expires_ms": n(expires_ms),
                "reconcile_ms": n(reconcile_ms), "version": n(1), "owner": s(owner),
                "created_ms": n(int(time.time() * 1000)), **self._index(lease)}
        if budget is not None:
            item["budget_key"] = s(budget.key_id)
            item["budget_periods"] = {"L": [s(p) for p in budget.period_ids]}
        refused = self._write([
            self._debit(account_id, amount, floor),
            {"Put": {"TableName": self._db.table, "Item": item,
                     "ConditionExpression": "attribute_not_exists(SK)"}},
            *self._reserve(budget, amount),
        ], done=lambda: self.get(account_id, lease.id) is not None, budget=budget)
        return refused or lease

    def extend(self, lease: Lease, amount: int, *, expires_ms: int, reconcile_ms: int,
               floor: int = 0, budget: Budget | None = None
               ) -> Lease | Refused | OverBudget:
        """Top `lease` up by `amount` from the balance and move its expiry: one
        transaction, conditional on the lease being as this environment left it.
        A key's own lease is topped up within its `budget` (the same periods)."""
        if lease.budget_key and (budget is None or budget.period_ids != lease.budget_periods):
            raise LeaseGone("the key's spend limits changed: take a new lease")
        version = lease.version + 1
        extended = Lease(id=lease.id, account_id=lease.account_id,
                         granted=lease.granted + amount, expires_ms=expires_ms,
                         reconcile_ms=reconcile_ms, version=version, owner=lease.owner,
                         budget_key=lease.budget_key, budget_periods=lease.budget_periods)
        update: TransactWriteItemTypeDef = {"Update": {
            "TableName": self._db.table, "Key": lease_key(lease.account_id, lease.id),
            "UpdateExpression": ("SET granted = granted + :a, expires_ms = :e, "
                                 "reconcile_ms = :r, version = :v, GSI1SK = :g"),
            "ConditionExpression": "#st = :open AND version = :was",
            "ExpressionAttributeNames": {"#st": "state"},
            "ExpressionAttributeValues": {
                ":a": n(amount), ":e": n(expires_ms), ":r": n(reconcile_ms), ":v": n(version),
                ":g": self._index(extended)["GSI1SK"], ":open": s("open"),
                ":was": n(lease.version)}}}
        if amount:
            writes = [self._debit(lease.account_id, amount, floor), update,
                      *self._reserve(budget if lease.budget_key else None, amount)]
        else:
            writes = [update]
        refused = self._write(writes, done=lambda: getattr(
            self.get(lease.account_id, lease.id), "version", None) == version,
            budget=budget if lease.budget_key else None)
        return refused or extended

    def _reserve(self, budget: Budget | None, amount: int) -> list[TransactWriteItemTypeDef]:
        if budget is None:
            return []
        now_s = int(time.time())
        return [reserve_write(self._db.table, budget.key_id, period, limit, amount, now_s)
                for period, limit in budget.periods]

    def _debit(self, account_id: str, amount: int, floor: int) -> TransactWriteItemTypeDef:
        return {"Update": {
            "TableName": self._db.table, "Key": account_key(account_id),
            "UpdateExpression": "SET balance = balance - :a, leased = if_not_exists(leased, :z) + :a",
            "ConditionExpression": "attribute_exists(PK) AND balance >= :f",
            "ExpressionAttributeValues": {":a": n(amount), ":f": n(max(amount, floor)),
                                          ":z": n(0)},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    def _write(self, writes: list[TransactWriteItemTypeDef], *, done: Any,
               budget: Budget | None = None) -> Refused | OverBudget | None:
        """One transaction, retried through conflicts and throttling. An attempt
        that committed although its caller saw an error (a timeout after the
        commit) is recognised by `done()` and never applied twice: AWS honours
        the ClientRequestToken for ten minutes, and the lease's own condition
        (it must not exist yet / must still have the version we read) fails
        on a replay either way."""
        token = secrets.token_hex(16)
        try:
            self._db.retrying(lambda: self._db.client.transact_write_items(
                TransactItems=writes, ClientRequestToken=token))
            return None
        except ConditionFailed as exc:
            reasons = exc.reasons
            codes = [r.get("Code") for r in reasons]
            if not codes:
                raise
            # [account debit, lease, budget periods...], or [lease] for a bare renewal
            lease_at = 1 if len(writes) > 1 else 0
            if codes[lease_at] == "ConditionalCheckFailed":
                if done():
                    return None  # an earlier attempt committed
                raise LeaseGone("the lease was closed or changed elsewhere") from None
            if codes[0] == "ConditionalCheckFailed" and lease_at:
                item = reasons[0].get("Item")
                if not item:
                    raise NotFound("The account of this key no longer exists.",
                                   code="account_not_found") from None
                return Refused(Account.from_item(item))
            for i, code in enumerate(codes[2:]):
                if code == "ConditionalCheckFailed" and budget is not None:
                    period, limit = budget.periods[i]
                    item = reasons[2 + i].get("Item") or {}
                    return OverBudget(budget, period, limit, get_n(item, "used"))
            raise

    @staticmethod
    def _index(lease: Lease) -> dict[str, Any]:
        return {"GSI1PK": s(f"LEASES#{shard(lease.id, LEASE_SHARDS)}"),
                "GSI1SK": s(f"{lease.reconcile_ms:013d}#{lease.account_id}#{lease.id}")}

    # ------------------------------------------------------------ charges
    def record_charge(self, lease: Lease, item: dict[str, Any]) -> None:
        """Write one call's ledger entry under its lease: one PutItem that only this
        environment makes, so nothing contends with it. Idempotent: a retry (or
        a replay) of the same request id writes nothing."""
        full = charge_record(lease, item)
        try:
            self._db.retrying(lambda: self._db.client.put_item(
                TableName=self._db.table, Item=full,
                ConditionExpression="attribute_not_exists(SK)"))
        except ConditionFailed as exc:
            if exc.code != CONDITION_FAILED:
                raise
            # Already recorded: an earlier attempt landed. Exactly once.

    def charges(self, lease_id: str) -> list[dict[str, Any]]:
        """Every charge recorded under a lease (a Query of its own partition)."""
        with self._db.errors():
            pages = self._db.client.get_paginator("query").paginate(
                TableName=self._db.table, ConsistentRead=True,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :c)",
                ExpressionAttributeValues={":pk": s(f"LEASE#{lease_id}"), ":c": s("CHARGE#")})
            return [item for page in pages for item in page["Items"]]

    # ------------------------------------------------------------ closing
    def close(self, lease: Lease, *, due_by_ms: int | None = None) -> bool:
        """Fold a lease into its account: refund what was not charged, count what
        was. With `due_by_ms` (the sweeper), only if it is still due by then: a
        renewal since the sweeper's query moved it on. Returns False when it was
        not closed here (someone else closed it, or it moved on)."""
        current = self.get(lease.account_id, lease.id)
        if current is None or current.state != "open":
            return False
        if due_by_ms is not None and current.reconcile_ms > due_by_ms:
            return False
        charges = self.charges(lease.id)
        spent = sum(get_n(c, "amount") for c in charges)
        refund = current.granted - spent
        budgets = [release_write(self._db.table, current.budget_key, period, refund)
                   for period in current.budget_periods] if refund else []
        try:
            self._db.retrying(lambda: self._db.client.transact_write_items(TransactItems=[
                *budgets,
                {"Update": {
                    "TableName": self._db.table, "Key": account_key(lease.account_id),
                    "UpdateExpression": ("SET balance = balance + :r, leased = leased - :g, "
                                         "charged = charged + :c"),
                    "ExpressionAttributeValues": {":r": n(refund), ":g": n(current.granted),
                                                  ":c": n(spent)}}},
                {"Update": {
                    "TableName": self._db.table, "Key": lease_key(lease.account_id, lease.id),
                    "UpdateExpression": ("SET #st = :closed, spent = :c, calls = :k, "
                                         "closed = :t, version = :v, expires_at = :x "
                                         "REMOVE GSI1PK, GSI1SK"),
                    "ConditionExpression": "#st = :open AND version = :was",
                    "ExpressionAttributeNames": {"#st": "state"},
                    "ExpressionAttributeValues": {
                        ":closed": s("closed"), ":open": s("open"), ":c": n(spent),
                        ":k": n(len(charges)), ":t": s(iso(int(time.time() * 1000))),
                        ":v": n(current.version + 1), ":was": n(current.version),
                        ":x": n(int(time.time()) + 400 * 86_400)}}},
            ]))
        except ConditionFailed as exc:
            if "ConditionalCheckFailed" in exc.codes:
                return False
            raise
        return True

    # ------------------------------------------------------------ reads
    def get(self, account_id: str, lease_id: str) -> Lease | None:
        with self._db.errors():
            item = self._db.client.get_item(TableName=self._db.table,
                                            Key=lease_key(account_id, lease_id),
                                            ConsistentRead=True).get("Item")
        return Lease.from_item(item) if item else None

    def open_leases(self, account_id: str) -> list[Lease]:
        with self._db.errors():
            pages = self._db.client.get_paginator("query").paginate(
                TableName=self._db.table, ConsistentRead=True,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :l)",
                FilterExpression="#st = :open", ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":pk": s(f"ACCOUNT#{account_id}"),
                                           ":l": s("LEASE#"), ":open": s("open")})
            return [Lease.from_item(i) for page in pages for i in page["Items"]]

    def due(self, now_ms: int) -> list[Lease]:
        """Open leases whose reconcile time is `now_ms` or earlier, from the sparse index:
        the cost follows the open leases, never the table."""
        due: list[Lease] = []
        with self._db.errors():
            for shard in range(LEASE_SHARDS):
                pages = self._db.client.get_paginator("query").paginate(
                    TableName=self._db.table, IndexName="gsi1",
                    KeyConditionExpression="GSI1PK = :p AND GSI1SK < :t",
                    ExpressionAttributeValues={":p": s(f"LEASES#{shard}"),
                                               ":t": s(f"{now_ms:013d}$")})  # '#' < '$'

                due += (Lease.from_item(i) for page in pages for i in page["Items"])
        return due

    def statement(self, account_id: str) -> Statement:
        with self._db.errors():
            item = self._db.client.get_item(TableName=self._db.table,
                                            Key=account_key(account_id),
                                            ConsistentRead=True).get("Item")
        if not item:
            raise NotFound(f"No account with id {account_id!r}.", code="account_not_found")
        leases = self.open_leases(account_id)
        pending = sum(get_n(c, "amount") for lease in leases for c in self.charges(lease.id))
        return Statement(Account.from_item(item), leases, pending)


class LeaseGone(Exception):
    """The lease is no longer this environment's to extend (closed by the sweeper
    or changed by another writer): take a new one."""
