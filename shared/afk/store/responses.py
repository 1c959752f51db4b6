"""Stored Responses-API turns: what `previous_response_id` chains rebuild.

Item layout (one turn; zlib-compressed JSON split over as many items as the
400 KB item limit needs, written in one transaction):

  ACCOUNT#<account> / RESPONSE#<id>        head: model, created, expires_at,
                                           previous id, ancestors (oldest first),
                                           parts count, bytes (the payload's
                                           stored size), part 0 of the payload
  ACCOUNT#<account> / RESPONSE#<id>#<n>    payload part n (n >= 1)
  ACCOUNT#<account> / RESPUSAGE#<day>#<writer>
                                           bytes stored on that UTC day (yyyymmdd)
                                           by one writer (one process), less what
                                           it deleted of that day's turns

Storage quota without a hot item: every stored turn adds its size to a usage
counter, but to one only its own process writes (a Lambda environment serves
one request at a time), one per day, so no item is shared by an account's
concurrent calls. An account's usage is the sum of its counters of the days
a stored turn can still be alive in: one Query of small items (a few per
environment that stored for it per day), which callers cache briefly. A day's
counter stays in the sum until its last turn can have expired, so usage errs
high, by at most a day's worth of expired turns. Deleting a turn subtracts
its size from the deleting process's counter of the turn's day.

The account is part of every key, so another account's response cannot even be
addressed: a read by the wrong account finds nothing (404). Expired turns are
treated as gone on read (moto never expires TTL items, and DynamoDB's TTL
deletion lags by hours). Only the conversation is stored: never a header, and
so never a key.
"""

from __future__ import annotations

import json
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from afk.records import dataclass
from afk.store.dynamo import ConditionFailed, Dynamo, get_n, get_s, n, s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        KeysAndAttributesOutputTypeDef,
        KeysAndAttributesTypeDef,
        TransactWriteItemTypeDef,
    )

PART_BYTES = 350_000
BATCH_GET_LIMIT = 100
DAY_S = 86_400


@dataclass(slots=True)
class StoredResponse:
    id: str
    account_id: str
    model: str
    created_at: int
    expires_at: int
    previous_response_id: str | None
    ancestors: list[str]  # ids of every earlier turn of the chain, oldest first
    input_items: list[dict[str, Any]]  # this turn's input, as items with ids
    output_items: list[dict[str, Any]]  # this turn's output items
    response: dict[str, Any] = field(default_factory=dict)  # the response object as returned

    stored_bytes: int = 0  # the payload's compressed size, once stored or read

    def payload(self) -> bytes:
        return zlib.compress(json.dumps({"input": self.input_items, "output": self.output_items,
                                         "response": self.response},
                                        separators=(",", ":")).encode(), 6)


def _key(account_id: str, response_id: str, part: int = 0) -> dict[str, Any]:
    sk = f"RESPONSE#{response_id}" + (f"#{part}" if part else "")
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(sk)}


def _day(epoch_s: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(epoch_s))


def _usage_key(account_id: str, day: str, writer: str) -> dict[str, Any]:
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(f"RESPUSAGE#{day}#{writer}")}


class Responses:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo
        self._writer = secrets.token_hex(6)  # this process: the one writer of its counters

    def put(self, record: StoredResponse) -> int:
        """Store the turn; returns its stored size in bytes (what counts against
        the account's quota)."""
        blob = record.payload()
        record.stored_bytes = len(blob)
        parts = [blob[i:i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
        # Counted first: a turn whose write then fails errs on the high side.
        self._add_usage(record.account_id, _day(record.created_at), len(blob),
                        record.expires_at + DAY_S)
        head = {**_key(record.account_id, record.id), "response_id": s(record.id),
                "model": s(record.model), "created_at": n(record.created_at),
                "expires_at": n(record.expires_at), "parts": n(len(parts)),
                "bytes": n(len(blob)),
                "ancestors": {"L": [s(a) for a in record.ancestors]}, "data": {"B": parts[0]}}
        if record.previous_response_id:
            head["previous_response_id"] = s(record.previous_response_id)
        writes: list[TransactWriteItemTypeDef] = [
            {"Put": {"TableName": self._db.table, "Item": head}}]
        writes += [{"Put": {"TableName": self._db.table,
                            "Item": {**_key(record.account_id, record.id, i), "data": {"B": p},
                                     "expires_at": n(record.expires_at)}}}
                   for i, p in enumerate(parts[1:], start=1)]
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=writes)
        return len(blob)

    def usage(self, account_id: str, *, ttl_s: int, now: int | None = None) -> int:
        """Bytes of stored turns the account may still have (see the module's
        docstring: errs high by at most a day of expired turns)."""
        now = int(time.time()) if now is None else now
        first, last = _day(now - ttl_s), _day(now)
        total = 0
        with self._db.errors():
            pages = self._db.client.get_paginator("query").paginate(
                TableName=self._db.table, ProjectionExpression="#b",
                ExpressionAttributeNames={"#b": "bytes"},
                KeyConditionExpression="PK = :pk AND SK BETWEEN :first AND :last",
                ExpressionAttributeValues={":pk": s(f"ACCOUNT#{account_id}"),
                                           ":first": s(f"RESPUSAGE#{first}#"),
                                           ":last": s(f"RESPUSAGE#{last}#~")})
            for page in pages:
                total += sum(get_n(item, "bytes") for item in page["Items"])
        return max(total, 0)

    def _add_usage(self, account_id: str, day: str, amount: int, expires_at: int) -> None:
        with self._db.errors():
            self._db.client.update_item(
                TableName=self._db.table, Key=_usage_key(account_id, day, self._writer),
                UpdateExpression="ADD #b :b SET expires_at = :e",
                ExpressionAttributeNames={"#b": "bytes"},
                ExpressionAttributeValues={":b": n(amount), ":e": n(expires_at)})

    def get(self, account_id: str, response_id: str) -> StoredResponse | None:
        found = self._get_many(account_id, [response_id])
        return found[0] if found else None

    def chain(self, account_id: str, response_id: str) -> list[StoredResponse] | None:
        """Every turn up to and including `response_id`, oldest first; None when
        the turn (or any turn it builds on) is gone or was never this account's."""
        head = self.get(account_id, response_id)
        if head is None:
            return None
        earlier = self._get_many(account_id, head.ancestors)
        if len(earlier) != len(head.ancestors):
            return None
        return [*earlier, head]

    def delete(self, account_id: str, response_id: str) -> bool:
        head = self.get(account_id, response_id)
        if head is None:
            return False
        parts = self._parts_count(account_id, response_id)
        deletes: list[TransactWriteItemTypeDef] = [
            {"Delete": {"TableName": self._db.table, "Key": _key(account_id, response_id, i)}}
            for i in range(parts)]
        # Only the delete that removes the head subtracts its size: two racing
        # deletes of one turn must not subtract it twice.
        deletes[0]["Delete"]["ConditionExpression"] = "attribute_exists(PK)"
        try:
            with self._db.errors():
                self._db.client.transact_write_items(TransactItems=deletes)
        except ConditionFailed:  # the head was gone already: another delete won
            return False
        if head.stored_bytes:
            self._add_usage(account_id, _day(head.created_at), -head.stored_bytes,
                            head.expires_at + DAY_S)
        return True

    # ------------------------------------------------------------ reading
    def _parts_count(self, account_id: str, response_id: str) -> int:
        with self._db.errors():
            item = self._db.client.get_item(TableName=self._db.table,
                                            Key=_key(account_id, response_id),
                                            ProjectionExpression="parts").get("Item") or {}
        return get_n(item, "parts", 1)

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for i in range(0, len(keys), BATCH_GET_LIMIT):
            request: Mapping[str, KeysAndAttributesTypeDef | KeysAndAttributesOutputTypeDef] = {
                self._db.table: {"Keys": keys[i:i + BATCH_GET_LIMIT], "ConsistentRead": True}}
            for _ in range(8):  # unprocessed keys come back under throttling
                with self._db.errors():
                    answer = self._db.client.batch_get_item(RequestItems=request)
                items += answer["Responses"].get(self._db.table, [])
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05)
        return items

    def _get_many(self, account_id: str, ids: list[str]) -> list[StoredResponse]:
        if not ids:
            return []
        now = int(time.time())
        heads = {get_s(i, "response_id", ""): i for i in self._batch_get(
            [_key(account_id, r) for r in dict.fromkeys(ids)])}
        heads = {r: h for r, h in heads.items() if get_n(h, "expires_at") > now}
        extra_keys = [_key(account_id, r, p) for r, h in heads.items()
                      for p in range(1, get_n(h, "parts", 1))]
        extra = {get_s(i, "SK"): i["data"]["B"] for i in self._batch_get(extra_keys)}
        out = []
        for response_id in ids:
            head = heads.get(response_id)
            if head is None:
                continue
            blob = head["data"]["B"] + b"".join(
                extra[f"RESPONSE#{response_id}#{p}"] for p in range(1, get_n(head, "parts", 1)))
            payload = json.loads(zlib.decompress(blob))
            out.append(StoredResponse(
                id=response_id, account_id=account_id, model=get_s(head, "model") or "",
                created_at=get_n(head, "created_at"), expires_at=get_n(head, "expires_at"),
                previous_response_id=get_s(head, "previous_response_id"),
                ancestors=[a["S"] for a in head.get("ancestors", {}).get("L", [])],
                input_items=payload["input"], output_items=payload["output"],
                response=payload["response"], stored_bytes=get_n(head, "bytes", len(blob))))
        return out
