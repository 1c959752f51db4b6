"""Accounts: balance, caps, credits."""

from __future__ import annotations

import secrets
import time
from dataclasses import field
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from afk.errors import Conflict, NotFound, StoreUnavailable
from afk.money import format_usd
from afk.records import dataclass
from afk.store.dynamo import ConditionFailed, Dynamo, get_n, get_s, n, s
from afk.store.items import (
    account_key,
    credit_claim_item,
    credit_claim_key,
    credit_entry_item,
    credit_marker_item,
    iso,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef


@dataclass(slots=True)
class Account:
    id: str
    name: str
    balance: int                      # pico-USD
    caps: dict[str, int]              # model id -> pico-USD per call
    holds: dict[str, dict[str, Any]]  # v1's per-call holds (none are created any more)
    leased: int = 0                   # pico-USD in open leases (see store/leases.py)
    charged: int = 0
    credited: int = 0
    currency: str = "USD"
    created: str = ""
    debt: int = 0  # refunds and disputes the balance could not cover (pico-USD)
    models: list[str] | None = field(default=None)  # None: every catalog model
    # Negotiated prices: markup percent over provider cost per model id ("*": all).
    markups: dict[str, Decimal] = field(default_factory=dict)

    @property
    def held(self) -> int:
        return sum(int(h["amount"]) for h in self.holds.values())

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Account:
        holds = {
            hold_id: {k: (int(v["N"]) if "N" in v else v.get("S")) for k, v in h["M"].items()}
            for hold_id, h in item.get("holds", {}).get("M", {}).items()
        }
        models = item.get("models")
        return cls(
            id=get_s(item, "account_id") or "",
            name=get_s(item, "name") or "",
            balance=get_n(item, "balance"),
            caps={m: int(v["N"]) for m, v in item.get("caps", {}).get("M", {}).items()},
            holds=holds,
            leased=get_n(item, "leased"),
            charged=get_n(item, "charged"),
            credited=get_n(item, "credited"), debt=get_n(item, "debt"),
            currency=get_s(item, "currency", "USD") or "USD",
            created=get_s(item, "created") or "",
            models=[v["S"] for v in models["L"]] if models and "L" in models else None,
            markups={m: Decimal(v["S"]) for m, v in item.get("markups", {}).get("M", {}).items()},
        )


class Accounts:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    def get(self, account_id: str) -> Account | None:
        with self._db.errors():
            item = self._db.client.get_item(TableName=self._db.table,
                                            Key=account_key(account_id),
                                            ConsistentRead=True).get("Item")
        return Account.from_item(item) if item else None

    def require(self, account_id: str) -> Account:
        account = self.get(account_id)
        if account is None:
            raise NotFound(f"No account with id {account_id!r}.", code="account_not_found")
        return account

    def list_all(self) -> list[Account]:
        """Every account, oldest first: a Scan, for `afk admin` (never on a request path)."""
        with self._db.errors():
            pages = self._db.client.get_paginator("scan").paginate(
                TableName=self._db.table, FilterExpression="SK = :a",
                ExpressionAttributeValues={":a": s("ACCOUNT")})
            accounts = [Account.from_item(i) for page in pages for i in page["Items"]]
        return sorted(accounts, key=lambda a: (a.created, a.id))

    def create(self, name: str, *, credits: int = 0, account_id: str | None = None) -> Account:
        """A new account; its opening credit is a ledger entry like any other."""
        account_id = account_id or f"acct_{secrets.token_hex(8)}"
        now_ms = int(time.time() * 1000)
        created = iso(now_ms)
        item = {
            **account_key(account_id),
            "account_id": s(account_id), "name": s(name), "currency": s("USD"),
            "balance": n(credits), "leased": n(0), "charged": n(0), "credited": n(credits),
            "caps": {"M": {}}, "holds": {"M": {}}, "created": s(created),
        }
        writes: list[TransactWriteItemTypeDef] = [{"Put": {
            "TableName": self._db.table, "Item": item,
            "ConditionExpression": "attribute_not_exists(PK)"}}]
        if credits:
            writes.append({"Put": {
                "TableName": self._db.table,
                "Item": credit_entry_item(account_id, credits, now_ms, note="opening credit"),
                "ConditionExpression": "attribute_not_exists(PK)"}})
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=writes)
        return Account(id=account_id, name=name, balance=credits, caps={}, holds={},
                       credited=credits, created=created)

    def add_credits(self, account_id: str, amount: int, *, note: str = "credit",
                    credit_id: str | None = None) -> Account:
        """Add `amount` pico-USD in one transaction. With a `credit_id` (an idempotency
        key), replaying the same credit is a no-op, and reusing the key for another
        account or amount is a `Conflict` (409), never a silent no-op. An account in
        debt (refunds or disputes its balance could not cover: `debit`) repays it
        from the credit first; the ledger entry says how much (`repaid`)."""
        debt = 0  # what the account owes, as last seen (a refusal tells us)
        for _ in range(20):
            found = self._transact_credit(account_id, self._credit_writes(
                account_id, amount, note=note, credit_id=credit_id, debt=debt),
                credit_id=credit_id, amount=amount)
            if found is None:
                return self.require(account_id)
            debt = found  # the debt moved (or was never seen): again, with it
        raise StoreUnavailable("The account kept changing; retry the credit.")

    def _credit_writes(self, account_id: str, amount: int, *, note: str,
                       credit_id: str | None, debt: int) -> list[TransactWriteItemTypeDef]:

        if amount <= 0:
            raise ValueError("a credit must be positive")
        now_ms = int(time.time() * 1000)
        repaid = min(amount, debt)
        entry = credit_entry_item(account_id, amount, now_ms, note=note, credit_id=credit_id)
        values = {":a": n(amount - repaid), ":z": n(0)}
        update = "SET balance = balance + :a, credited = credited + :a"
        condition = "attribute_exists(PK) AND (attribute_not_exists(debt) OR debt = :z)"
        if debt:
            entry["repaid"] = n(repaid)
            update += ", debt = :left"
            condition = "attribute_exists(PK) AND debt = :d"
            values.update({":left": n(debt - repaid), ":d": n(debt)})
            del values[":z"]
        writes: list[TransactWriteItemTypeDef] = [
            {"Update": {
                "TableName": self._db.table, "Key": account_key(account_id),
                "UpdateExpression": update, "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"Put": {"TableName": self._db.table, "Item": entry,
                     "ConditionExpression": "attribute_not_exists(PK)"}}]
        if credit_id:
            writes += [{"Put": {"TableName": self._db.table, "Item": item,
                                "ConditionExpression": "attribute_not_exists(PK)",
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
                       for item in (credit_marker_item(account_id, credit_id),
                                    credit_claim_item(account_id, credit_id, amount, now_ms))]
        return writes

    def _transact_credit(self, account_id: str, writes: list[TransactWriteItemTypeDef], *,
                         credit_id: str | None, amount: int) -> int | None:
        """None once the credit is applied (now or before); else the account's debt,
        which differed from what `writes` assumed."""
        try:
            self._db.retrying(lambda: self._db.client.transact_write_items(
                TransactItems=writes))
        except ConditionFailed as exc:
            reasons = exc.reasons
            codes = [r.get("Code") for r in reasons]
            if credit_id and "ConditionalCheckFailed" in codes[2:]:
                claim = reasons[3].get("Item") if len(reasons) > 3 else None
                if claim is None and codes[3:4] == ["ConditionalCheckFailed"]:
                    claim = self._claim(credit_id)
                if claim is None:
                    return None  # credited before claims carried their terms: applied once
                if get_s(claim, "account_id") == account_id and get_n(claim, "amount") == amount:
                    return None  # this very credit was already applied
                raise Conflict(
                    f"The idempotency key {credit_id!r} was already used for a credit of "
                    f"${format_usd(get_n(claim, 'amount'))} to "
                    + ("this account" if get_s(claim, "account_id") == account_id
                       else "another account")
                    + "; use a new key for a different credit.",
                    code="idempotency_key_reused") from None
            if codes and codes[0] == "ConditionalCheckFailed":
                item = reasons[0].get("Item")
                if item is None:
                    item = self._account_item(account_id)
                if item is None:
                    raise NotFound(f"No account with id {account_id!r}.",
                                   code="account_not_found") from None
                return get_n(item, "debt")
            raise
        return None

    def _account_item(self, account_id: str) -> dict[str, Any] | None:
        with self._db.errors():
            return self._db.client.get_item(TableName=self._db.table,
                                            Key=account_key(account_id),
                                            ConsistentRead=True).get("Item")

    def credit_claim(self, credit_id: str) -> tuple[str, int] | None:
        """The account and amount a keyed credit was for, or None."""
        claim = self._claim(credit_id)
        if claim is None:
            return None
        return get_s(claim, "account_id") or "", get_n(claim, "amount")

    def _claim(self, credit_id: str) -> dict[str, Any] | None:
        with self._db.errors():
            return self._db.client.get_item(TableName=self._db.table,
                                            Key=credit_claim_key(credit_id),
                                            ConsistentRead=True).get("Item")

    def debit(self, account_id: str, amount: int, *, debit_id: str, note: str) -> int:
        """Take `amount` pico-USD back (a refunded or disputed payment), once per
        `debit_id`. What the unleased balance cannot cover is never taken below
        zero: it is recorded as the account's `debt` (and on the ledger entry).
        Returns the debt this debit added (0 on a replay)."""
        if amount <= 0:
            raise ValueError("a debit must be positive")
        for _ in range(20):  # the balance moves under us (leases): re-read and retry
            balance = self.require(account_id).balance
            taken = min(balance, amount)
            now_ms = int(time.time() * 1000)
            entry = credit_entry_item(account_id, amount, now_ms, note=note,
                                      credit_id=f"debit_{debit_id}")
            entry.update({"type": s("debit"), "debt": n(amount - taken)})
            writes: list[TransactWriteItemTypeDef] = [
                {"Update": {
                    "TableName": self._db.table, "Key": account_key(account_id),
                    "UpdateExpression": ("SET balance = balance - :t, credited = credited - :t, "
                                         "debt = if_not_exists(debt, :z) + :d"),
                    "ConditionExpression": "attribute_exists(PK) AND balance >= :t",
                    "ExpressionAttributeValues": {":t": n(taken), ":d": n(amount - taken),
                                                  ":z": n(0)}}},
                {"Put": {"TableName": self._db.table, "Item": entry,
                         "ConditionExpression": "attribute_not_exists(PK)"}},
                {"Put": {"TableName": self._db.table,
                         "Item": {"PK": s(f"DEBIT#{debit_id}"), "SK": s("DEBIT"),
                                  "account_id": s(account_id), "amount": n(amount)},
                         "ConditionExpression": "attribute_not_exists(PK)"}}]
            try:
                self._db.retrying(partial(self._db.client.transact_write_items,
                                          TransactItems=writes))
                return amount - taken
            except ConditionFailed as exc:
                codes = exc.codes
                if codes[2:3] == ["ConditionalCheckFailed"]:
                    return 0  # this debit was applied before
                if codes[:1] != ["ConditionalCheckFailed"]:
                    raise
        raise StoreUnavailable("The balance kept changing; retry the debit.")

    def set_markup(self, account_id: str, model: str, percent: Decimal) -> None:
        """This account's price of `model` ("*": every model) at `percent` over cost."""
        self._update_map(account_id, "SET markups = if_not_exists(markups, :e)", None,
                         {":e": {"M": {}}})
        self._update_map(account_id, "SET markups.#m = :p", model, {":p": s(str(percent))})

    def clear_markup(self, account_id: str, model: str) -> None:
        self._update_map(account_id, "REMOVE markups.#m", model, None)

    def set_cap(self, account_id: str, model: str, amount: int) -> None:
        self._update_map(account_id, "SET caps.#m = :c", model, {":c": n(amount)})

    def clear_cap(self, account_id: str, model: str) -> None:
        self._update_map(account_id, "REMOVE caps.#m", model, None)

    def _update_map(self, account_id: str, expression: str, model: str | None,
                    values: dict[str, Any] | None) -> None:
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": values} if values else {}
        if model is not None:
            kwargs["ExpressionAttributeNames"] = {"#m": model}
        try:
            with self._db.errors():
                self._db.client.update_item(
                    TableName=self._db.table, Key=account_key(account_id),
                    UpdateExpression=expression, ConditionExpression="attribute_exists(PK)",
                    **kwargs)
        except ConditionFailed:
            raise NotFound(f"No account with id {account_id!r}.",
                           code="account_not_found") from None
