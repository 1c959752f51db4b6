"""Usage rollups: running totals per account, UTC day, model and key, kept off the
request path by the aggregator (afk/aggregator.py) from the table's stream.

Items (PK / SK):

  ROLLUP#<account> / <day>#<model>#<key_id>     one account's calls of one model with one
                                                key on one day (credits: model and key "")
  ROLLUP#DAY#<day> / <account>#<model>          the operator's view: revenue and provider
                                                cost of one account and model on one day
  ROLLED#<entry id> / ROLLED                    the marker of a ledger entry already counted

Each ledger entry is counted exactly once although the stream delivers at least
once (a failed batch is retried whole, possibly bisected; see aggregator.py): a
bucket's increment is one transaction with the markers of the entries it
counts, each conditional on not existing. A replayed entry cancels the
transaction; the cancellation reasons name which markers exist, and the
increment is retried with the others only. Markers expire (TTL) after the
stream's 24-hour retention, when no replay can come any more.

Reads are one Query of a rollup partition over a range of days: their cost
follows days × models × keys, never the number of calls.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from afk.records import dataclass
from afk.store.dynamo import ConditionFailed, Dynamo, get_n, get_s, n, s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

MARKER_TTL_S = 2 * 86_400  # beyond the stream's 24 h retention
MAX_TRANSACTION = 100      # DynamoDB's limit of items per transaction

COUNTERS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens",
            "reasoning_tokens", "revenue", "provider_cost", "credits", "debits")


@dataclass(slots=True)
class Totals:
    """Counts and pico-USD sums of some ledger entries. `revenue` is what customers
    were charged, `credits` what was added to balances, `debits` what refunds and
    disputes took back."""

    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    revenue: int = 0
    provider_cost: int = 0
    credits: int = 0
    debits: int = 0

    def add(self, other: Totals) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Totals:
        return cls(**{name: get_n(item, name) for name in COUNTERS})


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry as the aggregator counts it."""

    id: str
    account: str
    day: str
    model: str
    key_id: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class Rollup:
    account: str
    day: str
    model: str
    key_id: str
    totals: Totals


def entry_from_image(image: dict[str, Any]) -> Entry | None:
    """The ledger entry a new item is, or None (anything else in the table)."""
    pk, sk = get_s(image, "PK") or "", get_s(image, "SK") or ""
    kind = get_s(image, "type")
    created = get_s(image, "created") or ""
    if pk.startswith("LEASE#") and sk.startswith("CHARGE#") and kind == "charge":
        totals = Totals(requests=1, revenue=get_n(image, "amount"),
                        provider_cost=get_n(image, "provider_cost"),
                        **{name: get_n(image, name) for name in (
                            "input_tokens", "cached_input_tokens", "output_tokens",
                            "reasoning_tokens")})
        return Entry(id=get_s(image, "entry_id") or sk, account=get_s(image, "account_id") or "",
                     day=created[:10], model=get_s(image, "model") or "",
                     key_id=get_s(image, "key_id") or "", totals=totals)
    if pk.startswith("ACCOUNT#") and sk.startswith("LEDGER#") and kind in ("credit", "debit"):
        amount = get_n(image, "amount")
        totals = Totals(credits=amount) if kind == "credit" else Totals(debits=amount)
        return Entry(id=get_s(image, "entry_id") or sk, account=pk.removeprefix("ACCOUNT#"),
                     day=created[:10], model="", key_id="", totals=totals)
    return None


class Rollups:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    # ------------------------------------------------------------ writes
    def count(self, entries: Iterable[Entry]) -> int:
        """Add `entries` to their rollups, each exactly once however often it is
        passed. Returns how many were newly counted."""
        buckets: dict[tuple[str, str, str, str], list[Entry]] = defaultdict(list)
        for entry in entries:
            buckets[(entry.account, entry.day, entry.model, entry.key_id)].append(entry)
        counted = 0
        for bucket in buckets.values():
            for start in range(0, len(bucket), MAX_TRANSACTION - 2):
                counted += self._count_bucket(bucket[start:start + MAX_TRANSACTION - 2])
        return counted

    def _count_bucket(self, entries: list[Entry]) -> int:
        while entries:
            items = self._increment(entries)
            try:
                self._db.retrying(partial(self._db.client.transact_write_items,
                                          TransactItems=items))
                return len(entries)
            except ConditionFailed as exc:
                reasons = exc.reasons
                if not reasons:
                    raise
                # Reasons follow the items: two increments, then one marker per entry.
                seen = {entry.id for entry, reason in zip(entries, reasons[2:], strict=False)
                        if reason.get("Code") == "ConditionalCheckFailed"}
                if not seen:
                    raise
                entries = [entry for entry in entries if entry.id not in seen]
        return 0

    def _increment(self, entries: list[Entry]) -> list[TransactWriteItemTypeDef]:
        first = entries[0]
        totals = Totals()
        for entry in entries:
            totals.add(entry.totals)
        expires = int(time.time()) + MARKER_TTL_S

        def update(key: dict[str, Any], names: tuple[str, ...],
                   labels: dict[str, str]) -> TransactWriteItemTypeDef:
            # Every attribute by placeholder: DAY and others are reserved words.
            adds = ", ".join(f"#{name} :{name}" for name in names)
            sets = ", ".join(f"#{name} = :{name}" for name in labels)
            values = {f":{name}": n(getattr(totals, name)) for name in names}
            values.update({f":{name}": s(value) for name, value in labels.items()})
            return {"Update": {
                "TableName": self._db.table, "Key": key,
                "UpdateExpression": f"ADD {adds} SET {sets}",
                "ExpressionAttributeNames": {f"#{name}": name for name in (*names, *labels)},
                "ExpressionAttributeValues": values}}

        labels = {"account_id": first.account, "day": first.day, "model": first.model,
                  "key_id": first.key_id}
        markers: list[TransactWriteItemTypeDef] = [
            {"Put": {"TableName": self._db.table,
                     "Item": {"PK": s(f"ROLLED#{entry.id}"), "SK": s("ROLLED"),
                              "expires_at": n(expires)},
                     "ConditionExpression": "attribute_not_exists(PK)"}}
            for entry in entries]
        return [
            update(account_rollup_key(first.account, first.day, first.model, first.key_id),
                   COUNTERS, labels),
            update(operator_rollup_key(first.day, first.account, first.model),
                   ("requests", "revenue", "provider_cost", "credits", "debits"),
                   {k: v for k, v in labels.items() if k != "key_id"}),
            *markers,
        ]

    # ------------------------------------------------------------ reads
    def for_account(self, account_id: str, since_day: str, until_day: str) -> list[Rollup]:
        """The account's rollups of the days from `since_day` to `until_day` inclusive."""
        return [_rollup(item) for item in self._query(
            f"ROLLUP#{account_id}", f"{since_day}#", f"{until_day}#\uffff")]

    def for_day(self, day: str) -> list[Rollup]:
        """Every account's rollups of one day (the operator's report)."""
        return [_rollup(item) for item in self._query(f"ROLLUP#DAY#{day}")]

    def _query(self, pk: str, low: str | None = None,
               high: str | None = None) -> list[dict[str, Any]]:
        condition, values = "PK = :pk", {":pk": s(pk)}
        if low is not None and high is not None:
            condition += " AND SK BETWEEN :lo AND :hi"
            values.update({":lo": s(low), ":hi": s(high)})
        with self._db.errors():
            pages = self._db.client.get_paginator("query").paginate(
                TableName=self._db.table, KeyConditionExpression=condition,
                ExpressionAttributeValues=values)
            return [item for page in pages for item in page["Items"]]


def account_rollup_key(account_id: str, day: str, model: str, key_id: str) -> dict[str, Any]:
    return {"PK": s(f"ROLLUP#{account_id}"), "SK": s(f"{day}#{model}#{key_id}")}


def operator_rollup_key(day: str, account_id: str, model: str) -> dict[str, Any]:
    return {"PK": s(f"ROLLUP#DAY#{day}"), "SK": s(f"{account_id}#{model}")}


def _rollup(item: dict[str, Any]) -> Rollup:
    return Rollup(account=get_s(item, "account_id") or "", day=get_s(item, "day") or "",
                  model=get_s(item, "model") or "", key_id=get_s(item, "key_id") or "",
                  totals=Totals.from_item(item))


__all__ = ["COUNTERS", "Entry", "Rollup", "Rollups", "Totals", "entry_from_image"]
