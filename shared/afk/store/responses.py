"""Stored Responses-API turns: what `previous_response_id` chains rebuild.

Item layout (one turn; zlib-compressed JSON split over as many items as the
400 KB item limit needs, written in one transaction):

  ACCOUNT#<account> / RESPONSE#<id>        head: model, created, expires_at,
                                           previous id, ancestors (oldest first),
                                           parts count, part 0 of the payload
  ACCOUNT#<account> / RESPONSE#<id>#<n>    payload part n (n >= 1)

The account is part of every key, so another account's response cannot even be
addressed: a read by the wrong account finds nothing (404). Expired turns are
treated as gone on read (moto never expires TTL items, and DynamoDB's TTL
deletion lags by hours). Only the conversation is stored: never a header, and
so never a key.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from afk.store.dynamo import Dynamo, get_n, get_s, n, s

PART_BYTES = 350_000
BATCH_GET_LIMIT = 100


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

    def payload(self) -> bytes:
        return zlib.compress(json.dumps({"input": self.input_items, "output": self.output_items,
                                         "response": self.response},
                                        separators=(",", ":")).encode(), 6)


def _key(account_id: str, response_id: str, part: int = 0) -> dict[str, Any]:
    sk = f"RESPONSE#{response_id}" + (f"#{part}" if part else "")
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(sk)}


class Responses:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    def put(self, record: StoredResponse) -> None:
        blob = record.payload()
        parts = [blob[i:i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
        head = {**_key(record.account_id, record.id), "response_id": s(record.id),
                "model": s(record.model), "created_at": n(record.created_at),
                "expires_at": n(record.expires_at), "parts": n(len(parts)),
                "ancestors": {"L": [s(a) for a in record.ancestors]}, "data": {"B": parts[0]}}
        if record.previous_response_id:
            head["previous_response_id"] = s(record.previous_response_id)
        writes = [{"Put": {"TableName": self._db.table, "Item": head}}]
        writes += [{"Put": {"TableName": self._db.table,
                            "Item": {**_key(record.account_id, record.id, i), "data": {"B": p},
                                     "expires_at": n(record.expires_at)}}}
                   for i, p in enumerate(parts[1:], start=1)]
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=writes)

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
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=[
                {"Delete": {"TableName": self._db.table, "Key": _key(account_id, response_id, i)}}
                for i in range(parts)])
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
            request = {self._db.table: {"Keys": keys[i:i + BATCH_GET_LIMIT],
                                        "ConsistentRead": True}}
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
        heads = {get_s(i, "response_id"): i for i in self._batch_get(
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
                response=payload["response"]))
        return out
