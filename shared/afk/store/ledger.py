"""The ledger: immutable entries, one per charge and per credit.

Charges are written by the money protocol (billing/wallet.py, store/leases.py)
under the lease that reserved the call: `LEASE#<l> / CHARGE#<request>`,
listed per account through gsi1 (`USAGE#<account>#<shard>`). Credits, and
the charges of v1 (before leases), live in the account's own partition:
`ACCOUNT#<a> / LEDGER#<ms>#<id>`. Listing merges the two, newest first.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from afk.records import dataclass
from afk.store.budgets import Budget
from afk.store.dynamo import Dynamo, get_n, get_s, n, s
from afk.store.items import USAGE_SHARDS, entry_sk, iso, usage_partition


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """One call's reservation against its environment's lease (in memory only:
    nothing is written for it until its charge is)."""

    id: str  # the request id (x-afk-request-id)
    account_id: str
    amount: int  # pico-USD
    model: str
    endpoint: str
    key_id: str
    created_ms: int
    lease_id: str = ""
    budget: Budget | None = None  # the key's spend limits: it draws a lease of its own


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
    provider_cost: int = 0  # pico-USD the provider bills the operator for the same usage
    web_searches: int = 0  # hosted web searches billed (or grounded requests)
    web_search_cost: int = 0  # pico-USD of the charge that is search fees
    provider: str | None = None  # the deployment that served the call (a model's provider)


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
    provider_cost: int = 0  # pico-USD (charges): the operator's cost; never shown to customers
    web_searches: int = 0
    web_search_cost: int = 0  # pico-USD: the part of `amount` that is search fees
    provider: str | None = None  # which deployment served the call (failover)

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
            note=get_s(item, "note"), provider_cost=get_n(item, "provider_cost"),
            web_searches=get_n(item, "web_searches"),
            web_search_cost=get_n(item, "web_search_cost"),
            provider=get_s(item, "provider"),
        )


def charge_item(hold: Hold, settlement: Settlement, now_ms: int) -> dict[str, Any]:
    """The ledger entry of a settled call (without its keys: the lease adds them)."""
    charge = max(0, min(settlement.charge, hold.amount))
    return {
        "account_id": s(hold.account_id), "entry_id": s(hold.id), "type": s("charge"),
        "request_id": s(hold.id), "amount": n(charge), "hold": n(hold.amount),
        "created_ms": n(now_ms), "created": s(iso(now_ms)), "model": s(hold.model),
        "endpoint": s(hold.endpoint), "key_id": s(hold.key_id),
        "input_tokens": n(settlement.input_tokens),
        "cached_input_tokens": n(settlement.cached_input_tokens),
        "output_tokens": n(settlement.output_tokens),
        "reasoning_tokens": n(settlement.reasoning_tokens),
        "status": s(settlement.status), "estimated": {"BOOL": settlement.estimated},
        "uncovered": n(settlement.uncovered), "provider_cost": n(settlement.provider_cost),
        "web_searches": n(settlement.web_searches),
        "web_search_cost": n(settlement.web_search_cost),
        **({"provider": s(settlement.provider)} if settlement.provider else {}),
    }


class Ledger:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    def entries(self, account_id: str, *, limit: int = 50, model: str | None = None,
                since_ms: int | None = None, until_ms: int | None = None,
                kind: str | None = None, key_id: str | None = None,
                before: tuple[int, str] | None = None) -> list[LedgerEntry]:
        """Newest first, at most `limit`. Filters are applied while paging, so `limit`
        counts matches. `before` (a cursor: the last entry's `(created_ms, id)`)
        starts strictly after that entry."""
        found = self.iterate(account_id, model=model, since_ms=since_ms, until_ms=until_ms,
                             kind=kind, key_id=key_id, before=before,
                             page_size=min(limit, 1000))
        return [entry for entry, _ in zip(found, range(limit), strict=False)]

    def iterate(self, account_id: str, *, model: str | None = None,
                since_ms: int | None = None, until_ms: int | None = None,
                kind: str | None = None, key_id: str | None = None,
                before: tuple[int, str] | None = None,
                page_size: int = 1000) -> Iterator[LedgerEntry]:
        """Every matching entry, newest first, read page by page as it is consumed
        (an export of any size holds one page per source in memory)."""

        low_ms = since_ms or 0
        high_ms = until_ms if until_ms is not None else 10**13 - 1
        if before is not None:
            high_ms = min(high_ms, before[0])
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        filters = []
        if model:
            filters.append("model = :m")
            values[":m"] = s(model)
        if key_id:
            filters.append("key_id = :k")
            values[":k"] = s(key_id)
        if kind:
            filters.append("#t = :t")
            values[":t"] = s(kind)
            names["#t"] = "type"
        extra: dict[str, Any] = {"Limit": page_size}
        if filters:
            extra["FilterExpression"] = " AND ".join(filters)
        if names:
            extra["ExpressionAttributeNames"] = names
        sources = [{"KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
                    "ExpressionAttributeValues": {
                        ":pk": s(f"ACCOUNT#{account_id}"), ":lo": s(entry_sk(low_ms, "")),
                        ":hi": s(entry_sk(high_ms, "\uffff")), **values}}]
        if kind in (None, "charge"):
            sources += [{"IndexName": "gsi1",
                         "KeyConditionExpression": "GSI1PK = :pk AND GSI1SK BETWEEN :lo AND :hi",
                         "ExpressionAttributeValues": {
                             ":pk": s(usage_partition(account_id, shard)),
                             ":lo": s(f"{low_ms:013d}#"), ":hi": s(f"{high_ms:013d}#\uffff"),
                             **values}}
                        for shard in range(USAGE_SHARDS)]
        merged = heapq.merge(*(self._newest({**source, **extra}) for source in sources),
                             key=lambda e: (e.created_ms, e.id), reverse=True)
        for entry in merged:
            if before is None or (entry.created_ms, entry.id) < before:
                yield entry

    def _newest(self, query: dict[str, Any]) -> Iterator[LedgerEntry]:
        with self._db.errors():
            pages = iter(self._db.client.get_paginator("query").paginate(
                TableName=self._db.table, ScanIndexForward=False, **query))
        while True:
            with self._db.errors():
                page = next(pages, None)
            if page is None:
                return
            yield from (LedgerEntry.from_item(i) for i in page["Items"])

    def spend_by_key(self, account_id: str, *, day_ms: int, month_ms: int
                     ) -> dict[str, tuple[int, int]]:
        """Σ charges per key since `day_ms` and since `month_ms` (the starts of the
        current UTC day and month): what the Keys tab shows. A Query of the
        account's usage partitions for the month (off the request path)."""

        spend: dict[str, list[int]] = {}
        with self._db.errors():
            for shard in range(USAGE_SHARDS):
                for page in self._db.client.get_paginator("query").paginate(
                        TableName=self._db.table, IndexName="gsi1",
                        KeyConditionExpression="GSI1PK = :pk AND GSI1SK >= :lo",
                        ProjectionExpression="key_id, amount, created_ms",
                        ExpressionAttributeValues={
                            ":pk": s(usage_partition(account_id, shard)),
                            ":lo": s(f"{month_ms:013d}#")}):
                    for item in page["Items"]:
                        totals = spend.setdefault(get_s(item, "key_id") or "", [0, 0])
                        amount = get_n(item, "amount")
                        totals[1] += amount
                        if get_n(item, "created_ms") >= day_ms:
                            totals[0] += amount
        return {key: (day, month) for key, (day, month) in spend.items()}

    def all_entries(self, account_id: str) -> list[LedgerEntry]:
        """Every entry, credits with idempotency ids included (audits and tests)."""
        return list(self.iterate(account_id))
