"""Who is calling: the key from any header style, its account, cached briefly.

Every route accepts every style: `Authorization: Bearer`, `x-api-key`,
`x-goog-api-key`, and `?key=`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Generic, TypeVar

from afk.background import Background
from afk.errors import AuthenticationFailed, PermissionDenied
from afk.limits import LEGACY_SCOPE, Limits, iso
from afk.records import dataclass
from afk.store.keys import KeyRecord, Keys, hash_key, looks_like_key

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: str
    key_id: str
    scope: str = LEGACY_SCOPE
    limits: Limits = Limits()  # what applies: the stricter of the operator's and the account's

    @property
    def rpm(self) -> int | None:
        return self.limits.rpm

    def require(self, scope: str) -> None:
        """403 unless this key's scope covers `scope` (manage covers inference)."""
        if scope == "manage" and self.scope != "manage":
            raise PermissionDenied(
                "This is an inference key: it can call models and read its own usage, not "
                "manage the account. Use a manage key (the dashboard's sign-in key) for keys, "
                "caps, usage and top-ups.", code="insufficient_scope")

    @classmethod
    def of(cls, record: KeyRecord) -> Principal:
        """The caller behind an active record, or 401 when it is revoked or expired."""
        if not record.active:
            raise AuthenticationFailed("This API key has been revoked.", code="revoked_api_key")
        limits = record.limits
        if limits.expired(int(time.time() * 1000)):
            raise AuthenticationFailed(f"This API key expired at {iso(limits.expires_ms or 0)}.",
                                       code="expired_api_key")
        return cls(account_id=record.account_id, key_id=record.key_id, scope=record.scope,
                   limits=limits)


def key_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The API key, whichever way the caller's SDK sent it. `headers` has
    lower-case names (as Starlette's do)."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for name in ("x-api-key", "x-goog-api-key"):
        if headers.get(name):
            return headers[name].strip()
    return query.get("key") or None


class TTLCache(Generic[T]):
    """A small thread-safe cache whose entries expire after `ttl` seconds and ask
    to be refreshed after half of it (`lookup`), so a busy process refreshes them
    in the background before they expire. Full, it drops its oldest entry: a
    flood of new keys cannot flush the rest at once."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._items: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()
        self._epoch = 0  # bumped by discard/clear: a refresh read before then is stale

    def get(self, key: str) -> T | None:
        return self.lookup(key)[0]

    def lookup(self, key: str) -> tuple[T | None, bool]:
        """(the value or None, whether it is due for a refresh)."""
        with self._lock:
            hit = self._items.get(key)
            now = time.monotonic()
            if hit is None or hit[0] < now:
                self._items.pop(key, None)
                return None, False
            return hit[1], hit[0] - now < self._ttl / 2

    def epoch(self) -> int:
        return self._epoch

    def put(self, key: str, value: T, *, read_at: int | None = None) -> None:
        """Remember `value`; with `read_at` (an `epoch()` taken before reading it),
        only if nothing was discarded since."""
        with self._lock:
            if read_at is not None and read_at != self._epoch:
                return
            self._items.pop(key, None)
            while len(self._items) >= self._max:
                del self._items[next(iter(self._items))]
            self._items[key] = (time.monotonic() + self._ttl, value)

    def __len__(self) -> int:
        return len(self._items)

    def discard(self, key: str) -> None:
        with self._lock:
            self._epoch += 1
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._items.clear()


class Authenticator:
    """Key -> caller, cached for `ttl` seconds. Keys the store does not know are
    remembered as unknown too (a bounded negative cache), so replaying a junk or
    deleted key costs no store read per request. A key cannot exist before it is
    created (it is a random secret the store hands out), so caching its absence
    never hides a real key."""

    UNKNOWN_KEYS = 10_000  # entries: ~1 MB at most

    def __init__(self, keys: Keys, ttl: float, background: Background | None = None) -> None:
        self._keys = keys
        self._cache: TTLCache[KeyRecord] = TTLCache(ttl)
        self._unknown: TTLCache[bool] = TTLCache(ttl, max_entries=self.UNKNOWN_KEYS)
        self._background = background

    def cached(self, key: str | None) -> Principal | None:
        """The caller behind `key` if this process knows it already (no I/O), else
        None; a cached revoked or unknown key is still a 401. A known key due for
        a refresh is re-read in the background."""
        if not key or not looks_like_key(key):
            return None
        digest = hash_key(key)
        record, due = self._cache.lookup(digest)
        if due and self._background is not None:
            self._background.submit(("key", digest), lambda: self._refresh(key, digest))
        if record is None:
            if self._unknown.get(digest):
                raise AuthenticationFailed(_incorrect(key), code="invalid_api_key")
            return None
        return Principal.of(record)

    def authenticate(self, key: str | None) -> Principal:
        """The caller behind `key`, or 401. Blocking (may read the store)."""
        if not key:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer afk-…' "
                "(or x-api-key, x-goog-api-key, or ?key=).", code="missing_api_key")
        if not looks_like_key(key):
            raise AuthenticationFailed(_incorrect(key), code="invalid_api_key")
        digest = hash_key(key)
        record = self._cache.get(digest)
        if record is None:
            if self._unknown.get(digest):
                raise AuthenticationFailed(_incorrect(key), code="invalid_api_key")
            record = self._keys.lookup(key)
            if record is None:
                self._unknown.put(digest, True)
                raise AuthenticationFailed(_incorrect(key), code="invalid_api_key")
            self._cache.put(digest, record)
        return Principal.of(record)

    def _refresh(self, key: str, digest: str) -> None:
        read_at = self._cache.epoch()
        record = self._keys.lookup(key)
        if record is not None:
            self._cache.put(digest, record, read_at=read_at)

    def forget(self) -> None:
        """Drop every cached key, so a revocation made by this process applies at once
        (other warm processes see it within the cache TTL)."""
        self._cache.clear()
        self._unknown.clear()


def _incorrect(key: str) -> str:
    shown = f"{key[:8]}…{key[-4:]}" if len(key) > 12 else "…"
    return f"Incorrect API key provided: {shown}."
