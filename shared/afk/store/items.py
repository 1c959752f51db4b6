"""The table's keys and the items more than one repository writes: one module,
so the repositories import it and never each other (the layout: store/__init__)."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from afk.store.dynamo import n, s

LEASE_SHARDS = 8   # GSI partitions of open leases (the sweeper queries each)
USAGE_SHARDS = 4   # GSI partitions of an account's usage (the listing merges them)


def iso(ms: int) -> str:
    """A stored time: UTC, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def shard(text: str, shards: int) -> int:
    return hashlib.blake2s(text.encode(), digest_size=2).digest()[0] % shards


# ---------------------------------------------------------------- keys
def account_key(account_id: str) -> dict[str, Any]:
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s("ACCOUNT")}


def lease_key(account_id: str, lease_id: str) -> dict[str, Any]:
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(f"LEASE#{lease_id}")}


def charge_key(lease_id: str, request_id: str) -> dict[str, Any]:
    return {"PK": s(f"LEASE#{lease_id}"), "SK": s(f"CHARGE#{request_id}")}


def usage_partition(account_id: str, shard: int) -> str:
    return f"USAGE#{account_id}#{shard}"


def key_meta_key(account_id: str, key_id: str) -> dict[str, Any]:
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(f"KEY#{key_id}")}


def entry_sk(created_ms: int, entry_id: str) -> str:
    return f"LEDGER#{created_ms:013d}#{entry_id}"


def credit_claim_key(credit_id: str) -> dict[str, Any]:
    return {"PK": s(f"CREDIT#{credit_id}"), "SK": s("CREDIT")}


# ---------------------------------------------------------------- credits
def credit_entry_item(account_id: str, amount: int, created_ms: int, *, note: str,
                      credit_id: str | None = None) -> dict[str, Any]:
    entry_id = credit_id or f"cred_{secrets.token_hex(8)}"
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(entry_sk(created_ms, entry_id)),
            "entry_id": s(entry_id), "type": s("credit"), "amount": n(amount),
            "created_ms": n(created_ms), "created": s(iso(created_ms)), "note": s(note)}


def credit_marker_item(account_id: str, credit_id: str) -> dict[str, Any]:
    """The per-account marker of a credit with a caller-chosen id (written since v1)."""
    return {"PK": s(f"ACCOUNT#{account_id}"), "SK": s(f"CREDIT#{credit_id}")}


def credit_claim_item(account_id: str, credit_id: str, amount: int,
                      created_ms: int) -> dict[str, Any]:
    """The table-wide claim of an idempotency key: which account it credited and by
    how much. Replaying the key with the same account and amount is a no-op; with
    anything else it is a conflict (Stripe's rule for idempotency keys)."""
    return {**credit_claim_key(credit_id), "account_id": s(account_id), "amount": n(amount),
            "created_ms": n(created_ms), "created": s(iso(created_ms))}
