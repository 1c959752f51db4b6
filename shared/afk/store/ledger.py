"""Holds and the append-only ledger: the reserve / settle protocol.

reserve: ONE conditional UpdateItem on the account moves the quote from the
  balance into a hold (a map entry inside the account item). It fails, and
  returns the account as it is, when the balance or the model's current cap
  cannot cover the quote.
settle:  ONE TransactWriteItems charges the actual cost, returns the rest of
  the hold to the balance, deletes the hold, and appends the ledger entry.
  The hold itself is the idempotency marker: the account update is
  conditional on the hold still existing, so a retried settle, a settle
  racing the sweeper, or two sweepers each settle a hold exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from afk.errors import NotFound
from afk.store.accounts import Account, _iso, account_key
from afk.store.dynamo import Dynamo, get_n, get_s, n, s
from afk.store.keys import key_meta_key


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    id: str  # the request id (x-afk-request-id)
    account_id: str
    amount: int  # pico-USD
    model: str
    endpoint: str
    key_id: str
    created_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    charge: int  # pico-USD actually charged; never more than the hold
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    status: str = "ok"  # ok | error | disconnected | expired
    estimated: bool = False  # usage was estimated: the upstream never reported it
    uncovered: int = 0  # cost above the hold that was not charged (estimate too low)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: str
    type: str  # charge | credit
    created: str
    created_ms: int
    amount: int  # pico-USD: the charge, or the credit
    request_id: str | None = None
    model: str | None = None
    endpoint: str | None = None
    key_id: str | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    status: str = "ok"
    estimated: bool = False
    note: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> LedgerEntry:
        return cls(
            id=get_s(item, "entry_id") or "", type=get_s(item, "type") or "charge",
            created=get_s(item, "created") or "", created_ms=get_n(item, "created_ms"),
            amount=get_n(item, "amount"), request_id=get_s(item, "request_id"),
            model=get_s(item, "model"), endpoint=get_s(item, "endpoint"),
            key_id=get_s(item, "key_id"), input_tokens=get_n(item, "input_tokens"),
            cached_input_tokens=get_n(item, "cached_input_tokens"),
            output_tokens=get_n(item, "output_tokens"),
            reasoning_tokens=get_n(item, "reasoning_tokens"),
            status=get_s(item, "status") or "ok",
            estimated=bool(item.get("estimated", {}).get("BOOL", False)),
            note=get_s(item, "note"),
        )


def _entry_sk(created_ms: int, entry_id: str) -> str:
    return f"LEDGER#{created_ms:013d}#{entry_id}"


def credit_entry_item(account_id: str, amount: int, created_ms: int, *, note: str,
                      credit_id: str | None = None) -> dict[str, Any]:
    import secrets

    entry_id = credit_id or f"cred_{secrets.token_hex(8)}"
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(_entry_sk(created_ms, entry_id)),
            "entry_id": s(entry_id), "type": s("credit"), "amount": n(amount),
            "created_ms": n(created_ms), "created": s(_iso(created_ms)), "note": s(note)}


def credit_marker_item(account_id: str, credit_id: str) -> dict[str, Any]:
    """The idempotency marker of a credit with a caller-chosen id: replaying the
    credit collides with it, so the credit is applied once."""
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(f"CREDIT#{credit_id}")}


class Ledger:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    def reserve(self, hold: Hold) -> Account | None:
        """Move `hold.amount` from the balance into a hold, atomically.

        Returns None on success. When the balance or the model's cap cannot
        cover it, nothing changes and the account as it stands is returned so
        the caller can re-quote without another read.
        """
        from botocore.exceptions import ClientError

        try:
            with self._db.errors():
                self._db.client.update_item(
                    TableName=self._db.table, Key=account_key(hold.account_id),
                    UpdateExpression="SET balance = balance - :a, holds.#h = :hold",
                    ConditionExpression=(
                        "attribute_exists(PK) AND balance >= :a AND attribute_not_exists(holds.#h)"
                        " AND (attribute_not_exists(caps.#m) OR caps.#m >= :a)"),
                    ExpressionAttributeNames={"#h": hold.id, "#m": hold.model},
                    ExpressionAttributeValues={":a": n(hold.amount), ":hold": {"M": {
                        "amount": n(hold.amount), "created_ms": n(hold.created_ms),
                        "model": s(hold.model), "endpoint": s(hold.endpoint),
                        "key_id": s(hold.key_id)}}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            item = exc.response.get("Item")
            if not item:
                raise NotFound("The account of this key no longer exists.",
                               code="account_not_found") from None
            return Account.from_item(item)
        return None

    def settle(self, hold: Hold, settlement: Settlement, *, attempts: int = 3) -> bool:
        """Charge, refund the rest, drop the hold, write the ledger entry: one transaction.

        Returns False when the hold was already settled (a retry, or the sweeper).
        """
        from botocore.exceptions import ClientError

        from afk.errors import StoreUnavailable

        charge = max(0, min(settlement.charge, hold.amount))
        now_ms = int(time.time() * 1000)
        entry = {
            "PK": s(f"ACCOUNT#{hold.account_id}"), "SK": s(_entry_sk(now_ms, hold.id)),
            "entry_id": s(hold.id), "type": s("charge"), "request_id": s(hold.id),
            "amount": n(charge), "hold": n(hold.amount), "created_ms": n(now_ms),
            "created": s(_iso(now_ms)), "model": s(hold.model), "endpoint": s(hold.endpoint),
            "key_id": s(hold.key_id), "input_tokens": n(settlement.input_tokens),
            "cached_input_tokens": n(settlement.cached_input_tokens),
            "output_tokens": n(settlement.output_tokens),
            "reasoning_tokens": n(settlement.reasoning_tokens),
            "status": s(settlement.status), "estimated": {"BOOL": settlement.estimated},
            "uncovered": n(settlement.uncovered),
        }
        writes = [
            {"Update": {
                "TableName": self._db.table, "Key": account_key(hold.account_id),
                "UpdateExpression": ("SET balance = balance + :refund, charged = charged + :c "
                                     "REMOVE holds.#h"),
                "ConditionExpression": "attribute_exists(holds.#h)",
                "ExpressionAttributeNames": {"#h": hold.id},
                "ExpressionAttributeValues": {":refund": n(hold.amount - charge), ":c": n(charge)},
            }},
            {"Put": {"TableName": self._db.table, "Item": entry,
                     "ConditionExpression": "attribute_not_exists(PK)"}},
        ]
        if hold.key_id and settlement.status != "expired":
            writes.append({"Update": {
                "TableName": self._db.table, "Key": key_meta_key(hold.account_id, hold.key_id),
                "UpdateExpression": "SET last_used = :t",
                "ExpressionAttributeValues": {":t": s(_iso(now_ms))}}})
        for attempt in range(attempts):
            try:
                with self._db.errors():
                    self._db.client.transact_write_items(TransactItems=writes)
                return True
            except ClientError as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False  # already settled: exactly-once holds
                if attempt + 1 == attempts:
                    raise StoreUnavailable("settling the hold failed") from exc
            except StoreUnavailable:
                if attempt + 1 == attempts:
                    raise
            time.sleep(0.05 * 2**attempt)
        return False

    def entries(self, account_id: str, *, limit: int = 50, model: str | None = None,
                since_ms: int | None = None, until_ms: int | None = None,
                kind: str | None = None) -> list[LedgerEntry]:
        """Newest first. Filters are applied while paging, so `limit` counts matches."""
        low = _entry_sk(since_ms or 0, "")
        high = _entry_sk(until_ms if until_ms is not None else 10**13 - 1, "\uffff")
        kwargs: dict[str, Any] = {
            "TableName": self._db.table, "ScanIndexForward": False,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":pk": s(f"ACCOUNT#{account_id}"), ":lo": s(low),
                                          ":hi": s(high)},
        }
        filters = []
        if model:
            filters.append("model = :m")
            kwargs["ExpressionAttributeValues"][":m"] = s(model)
        if kind:
            filters.append("#t = :t")
            kwargs["ExpressionAttributeValues"][":t"] = s(kind)
            kwargs["ExpressionAttributeNames"] = {"#t": "type"}
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
        out: list[LedgerEntry] = []
        with self._db.errors():
            for page in self._db.client.get_paginator("query").paginate(**kwargs):
                out += (LedgerEntry.from_item(i) for i in page["Items"])
                if len(out) >= limit:
                    break
        return out[:limit]

    def all_entries(self, account_id: str) -> list[LedgerEntry]:
        """Every entry, credits with idempotency ids included (audits and tests)."""
        with self._db.errors():
            pages = self._db.client.get_paginator("query").paginate(
                TableName=self._db.table,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
                ExpressionAttributeValues={":pk": s(f"ACCOUNT#{account_id}"),
                                           ":sk": s("LEDGER#")})
            return [LedgerEntry.from_item(i) for page in pages for i in page["Items"]]

    def stale_holds(self, older_than_ms: int) -> list[Hold]:
        """Holds created before `older_than_ms`, found by scanning accounts.

        The sweeper's access pattern (a scheduled job, never the request path).
        """
        holds: list[Hold] = []
        with self._db.errors():
            pages = self._db.client.get_paginator("scan").paginate(
                TableName=self._db.table, FilterExpression="SK = :a AND size(holds) > :z",
                ExpressionAttributeValues={":a": s("ACCOUNT"), ":z": n(0)},
                ProjectionExpression="account_id, holds")
            for page in pages:
                for item in page["Items"]:
                    account = Account.from_item(item)
                    for hold_id, h in account.holds.items():
                        if int(h["created_ms"]) < older_than_ms:
                            holds.append(Hold(id=hold_id, account_id=account.id,
                                              amount=int(h["amount"]), model=str(h["model"]),
                                              endpoint=str(h["endpoint"]),
                                              key_id=str(h.get("key_id") or ""),
                                              created_ms=int(h["created_ms"])))
        return holds
