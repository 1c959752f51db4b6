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
from typing import Any

from afk.errors import NotFound
from afk.limits import LEGACY_SCOPE, NO_LIMITS, Limits
from afk.records import dataclass
from afk.store.dynamo import ConditionFailed, Dynamo, get_n, get_s, n, s
from afk.store.items import iso, key_meta_key

KEY_PREFIX = "afk-"
KEY_BODY_LENGTH = 48
_BASE62 = string.digits + string.ascii_letters


def new_key() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_BASE62) for _ in range(KEY_BODY_LENGTH))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    body = value[len(KEY_PREFIX):]
    # ASCII letters and digits (_BASE62), checked in C rather than a character at a time.
    return (value.startswith(KEY_PREFIX) and len(body) >= 40
            and body.isascii() and body.isalnum())


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    account_id: str
    name: str
    prefix: str
    created: str
    status: str  # "active" | "revoked"
    last_used: str | None = None
    scope: str = LEGACY_SCOPE  # "inference" | "manage" (afk.limits)
    own: Limits = Limits()        # set by the account's manage keys
    operator: Limits = Limits()   # set by `afk admin keys limit`; no customer key changes it

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def limits(self) -> Limits:
        """What applies: the stricter of the two owners' limits."""
        return self.own.stricter(self.operator)

    @property
    def rpm(self) -> int | None:
        return self.limits.rpm

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> KeyRecord:
        own = limits_from(item.get("limits"))
        if "limits" not in item and "rpm" in item:  # set before limits had owners
            own = Limits(rpm=get_n(item, "rpm"))
        return cls(key_id=get_s(item, "key_id") or "", account_id=get_s(item, "account_id") or "",
                   name=get_s(item, "name") or "", prefix=get_s(item, "prefix") or "",
                   created=get_s(item, "created") or "", status=get_s(item, "status") or "active",
                   last_used=get_s(item, "last_used"),
                   scope=get_s(item, "scope") or LEGACY_SCOPE, own=own,
                   operator=limits_from(item.get("operator_limits")))


_NUMBERS = ("rpm", "per_day", "per_month", "expires_ms")


def limits_to(limits: Limits) -> dict[str, Any]:
    """A `Limits` as a DynamoDB map attribute (absent fields: no limit)."""
    fields: dict[str, Any] = {f: n(getattr(limits, f)) for f in _NUMBERS
                              if getattr(limits, f) is not None}
    if limits.models is not None:
        fields["models"] = {"L": [s(m) for m in sorted(limits.models)]}
    return {"M": fields}


def limits_from(value: dict[str, Any] | None) -> Limits:
    fields = (value or {}).get("M", {})
    models = fields.get("models")
    return Limits(**{f: int(fields[f]["N"]) for f in _NUMBERS if f in fields},
                  models=frozenset(m["S"] for m in models["L"]) if models else None)


class Keys:
    def __init__(self, dynamo: Dynamo) -> None:
        self._db = dynamo

    def create(self, account_id: str, name: str = "default", *, scope: str = LEGACY_SCOPE,
               own: Limits = NO_LIMITS, operator: Limits = NO_LIMITS
               ) -> tuple[str, KeyRecord]:
        """A new key for the account. The plaintext is returned once and never stored."""
        key = new_key()
        digest = hash_key(key)
        key_id = f"key_{secrets.token_hex(8)}"
        record = KeyRecord(key_id=key_id, account_id=account_id, name=name,
                           prefix=key[:12], created=iso(int(time.time() * 1000)),
                           status="active", scope=scope, own=own, operator=operator)
        common = {"key_id": s(key_id), "account_id": s(account_id), "name": s(name),
                  "prefix": s(record.prefix), "created": s(record.created), "status": s("active"),
                  "scope": s(scope), "limits": limits_to(own),
                  "operator_limits": limits_to(operator)}
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
        except ConditionFailed as exc:
            reasons = exc.codes
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
        revoked = {":r": s("revoked"), ":t": s(iso(int(time.time() * 1000)))}
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

    def set_limits(self, key_id: str, limits: Limits, *, owner: str,
                   account_id: str | None = None) -> KeyRecord:
        """Replace one owner's limits on a key (`owner`: "own" or "operator"). With
        `account_id`, a key of another account is not found."""
        record, digest = self.get(key_id)
        if account_id is not None and record.account_id != account_id:
            raise NotFound(f"No key with id {key_id!r}.", code="key_not_found")
        if owner == "own":
            expression = "SET limits = :l REMOVE rpm"
            values = {":l": limits_to(limits)}
        else:  # a key from before limits had owners keeps its own rpm as its own limit
            expression = ("SET operator_limits = :l, "
                          "limits = if_not_exists(limits, :own) REMOVE rpm")
            values = {":l": limits_to(limits), ":own": limits_to(record.own)}
        with self._db.errors():
            self._db.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self._db.table, "Key": key,
                            "UpdateExpression": expression, "ExpressionAttributeValues": values}}
                for key in ({"PK": s(f"KEY#{digest}"), "SK": s("KEY")},
                            key_meta_key(record.account_id, key_id))])
        if owner == "own":
            return dataclasses.replace(record, own=limits)
        return dataclasses.replace(record, operator=limits)

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
        except ConditionFailed:
            return (window + 1) * 60 - now
        return None
