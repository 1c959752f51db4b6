"""API keys, stored only as SHA-256 hashes.

A key is `afk-` + 48 random base62 characters (≈285 bits): a long random
secret, so an unsalted fast hash is the right tool (there is nothing to
brute-force), and lookup by hash is one GetItem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import string
import time
from dataclasses import dataclass
from typing import Any

from afk.errors import NotFound
from afk.store.accounts import _iso
from afk.store.dynamo import Dynamo, get_n, get_s, n, s

KEY_PREFIX = "afk-"
KEY_BODY_LENGTH = 48
_BASE62 = string.digits + string.ascii_letters


def new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(KEY_BODY_LENGTH))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    body = value[len(KEY_PREFIX):]
    return (value.startswith(KEY_PREFIX) and len(body) >= 40
            and all(c in _BASE62 for c in body))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    account_id: str
    name: str
    prefix: str
    created: str
    status: str  # "active" | "revoked"
    last_used: str | None = None
    rpm: int | None = None  # requests per minute allowed to this key; None: unlimited

    @property
    def active(self) -> bool:
        return self.status == "active"

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        return cls(key_id=get_s(item, "key_id") or "", account_id=get_s(item, "account_id") or "",
                   name=get_s(item, "name") or "", prefix=get_s(item, "prefix") or "",
                   created=get_s(item, "created") or "", status=get_s(item, "status") or "active",
                   last_used=get_s(item, "last_used"),
                   rpm=get_n(item, "rpm") if "rpm" in item else None)


def key_meta_key(account_id: str, key_id: str) -> dict[str, Any]:
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(f"KEY#{key_id}")}


class Keys:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    def create(self, account_id: str, name: str = "default",
               rpm: int | None = None) -> tuple[str, KeyRecord]:
        """A new key for the account. The plaintext is returned once and never stored."""
        key = new_key()
        digest = hash_key(key)
        key_id = f"key_{secrets.token_hex(8)}"
        record = KeyRecord(key_id=key_id, account_id=account_id, name=name,
                           prefix=key[:12], created=_iso(int(time.time() * 1000)),
                           status="active", rpm=rpm)
        common = {"key_id": s(key_id), "account_id": s(account_id), "name": s(name),
                  "prefix": s(record.prefix), "created": s(record.created), "status": s("active"),
                  **({"rpm": n(rpm)} if rpm is not None else {})}
        from botocore.exceptions import ClientError

        try:
            with self._db.errors():
                self._db.client.transact_write_items(TransactItems=[
                    {"ConditionCheck": {
                        "TableName": self._db.table,
                        "Key": {"PK": s(f"ACCOUNT#{account_id}"), "SK": s("ACCOUNT")},
                        "ConditionExpression": "attribute_exists(PK)"}},
                    {"Put": {"TableName": self._db.table,
                             "Item": {"PK": s(f"KEY#{digest}"), "SK": s("KEY"), **common},
                             "ConditionExpression": "attribute_not_exists(PK)"}},
                    {"Put": {"TableName": self._db.table,
                             "Item": {**key_meta_key(account_id, key_id), **common,
                                      "key_hash": s(digest), "GSI1PK": s(f"KEYID#{key_id}"),
                                      "GSI1SK": s("KEY")}}},
                ])
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise NotFound(f"No account with id {account_id!r}.",
                               code="account_not_found") from None
            raise
        return key, record

    def lookup(self, key: str) -> KeyRecord | None:
        """The key's record, or None when no such key exists."""
        with self._db.errors():
            item = self._db.client.get_item(
                TableName=self._db.table, Key={"PK": s(f"KEY#{hash_key(key)}"), "SK": s("KEY")},
            ).get("Item")
        return KeyRecord.from_item(item) if item else None

    def list(self, account_id: str) -> list[KeyRecord]:
        with self._db.errors():
            pages = self._db.client.get_paginator("query").paginate(
                TableName=self._db.table,
                KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
                ExpressionAttributeValues={":pk": s(f"ACCOUNT#{account_id}"), ":sk": s("KEY#")})
            items = [item for page in pages for item in page["Items"]]
        return sorted((KeyRecord.from_item(i) for i in items), key=lambda k: k.created)

    def get(self, key_id: str) -> tuple[KeyRecord, str]:
        """A key's record and hash by its id."""
        with self._db.errors():
            items = self._db.client.query(
                TableName=self._db.table, IndexName="gsi1",
                KeyConditionExpression="GSI1PK = :k",
                ExpressionAttributeValues={":k": s(f"KEYID#{key_id}")})["Items"]
        if not items:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        return KeyRecord.from_item(items[0]), get_s(items[0], "key_hash") or ""

    def revoke(self, key_id: str, *, account_id: str | None = None) -> KeyRecord:
        """Revoke a key for good. With `account_id`, a key of another account is not found."""
        record, digest = self.get(key_id)
        if account_id is not None and record.account_id != account_id:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        revoked = {":r": s("revoked"), ":t": s(_iso(int(time.time() * 1000)))}
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self._db.table,
                            "Key": {"PK": s(f"KEY#{digest}"), "SK": s("KEY")},
                            "UpdateExpression": "SET #s = :r, revoked_at = :t",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": revoked}},
                {"Update": {"TableName": self._db.table,
                            "Key": key_meta_key(record.account_id, key_id),
                            "UpdateExpression": "SET #s = :r, revoked_at = :t",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": revoked}},
            ])
        return dataclasses.replace(record, status="revoked")

    def set_rpm(self, key_id: str, rpm: int | None, *, account_id: str | None = None) -> KeyRecord:
        """Set (or with None, lift) a key's requests-per-minute limit."""
        record, digest = self.get(key_id)
        if account_id is not None and record.account_id != account_id:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        if rpm is None:
            update: dict[str, Any] = {"UpdateExpression": "REMOVE rpm"}
        else:
            update = {"UpdateExpression": "SET rpm = :r", "ExpressionAttributeValues": {
                ":r": n(rpm)}}
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self._db.table, "Key": key, **update}}
                for key in ({"PK": s(f"KEY#{digest}"), "SK": s("KEY")},
                            key_meta_key(record.account_id, key_id))])
        return dataclasses.replace(record, rpm=rpm)

    def touch(self, account_id: str, key_id: str, when: str) -> None:
        """Record when a key was last used: its own write, never part of a settle
        (every call of a key would contend on it). Callers rate-limit it."""
        with self._db.errors():
            self._db.client.update_item(
                TableName=self._db.table, Key=key_meta_key(account_id, key_id),
                UpdateExpression="SET last_used = :t", ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":t": s(when)})

    def count_request(self, key_id: str, rpm: int, now: float | None = None) -> float | None:
        """Count one request against the key's per-minute limit, atomically (one
        conditional write, so the limit holds across every Lambda container).
        Returns None when allowed, else the seconds until the window resets."""
        from botocore.exceptions import ClientError

        now = time.time() if now is None else now
        window = int(now // 60)
        try:
            with self._db.errors():
                self._db.client.update_item(
                    TableName=self._db.table,
                    Key={"PK": s(f"RATE#{key_id}"), "SK": s(str(window))},
                    UpdateExpression="ADD requests :one SET expires_at = :exp",
                    ConditionExpression="attribute_not_exists(requests) OR requests < :rpm",
                    ExpressionAttributeValues={":one": n(1), ":rpm": n(rpm),
                                               ":exp": n((window + 2) * 60)})
        except ClientError:
            return (window + 1) * 60 - now
        return None
